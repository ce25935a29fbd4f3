import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PAYMENTS_OPTIONS, type PaymentsOptions } from '../payments.tokens.js';
import type { PurchaseLotTerms } from '@app/ledger';
import { packageLotTerms, type TokenPackage } from '../token-packages.js';

/** The token packages on sale, as configured (TOKEN_PACKAGES), in their configured order, with the terms of the lot each credits. */
export type PackageList = { readonly data: readonly (Pick<TokenPackage, 'id' | 'tokens' | 'price' | 'currency'> & PurchaseLotTerms & { readonly provider: string })[] };

export class ListPackagesQuery extends Query<PackageList> {}

@QueryHandler(ListPackagesQuery)
export class ListPackagesHandler implements IQueryHandler<ListPackagesQuery> {
  constructor(@Inject(PAYMENTS_OPTIONS) private readonly options: PaymentsOptions) {}

  execute(): Promise<PackageList> {
    // Copied field by field: the configuration objects carry nothing else to the client.
    const data = this.options.packages.map(({ id, tokens, price, currency }) => ({ id, tokens, price, currency, provider: this.options.provider, ...packageLotTerms(this.options.packages, id) }));
    return Promise.resolve({ data });
  }
}
