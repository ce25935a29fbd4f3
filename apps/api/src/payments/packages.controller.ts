import { Controller, Get } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ListPackagesQuery } from '@app/payments';
import { TokenPackageListResponse } from './payments.dto.js';

/** The token packages on sale. Public: a pricing page is built on it before anyone signs in; it shows configuration only. */
@ApiTags('payments')
@Controller({ path: 'packages', version: '1' })
export class PackagesController {
  constructor(private readonly queryBus: QueryBus) {}

  @Get()
  @ApiOperation({ operationId: 'listPackages', summary: 'List the token packages on sale' })
  @ApiOkResponse({ type: TokenPackageListResponse, description: 'Every configured package (TOKEN_PACKAGES), in configured order. No credentials needed.' })
  list() {
    return this.queryBus.execute(new ListPackagesQuery());
  }
}
