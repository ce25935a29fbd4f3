import { ApiProperty } from '@nestjs/swagger';
import { Matches } from 'class-validator';
import { IsCanonicalUuid } from '../http/canonical-uuid.js';

export class ProjectionNameParams {
  @ApiProperty({ example: 'token_accounts' })
  @Matches(/^[a-z][a-z0-9_]{0,62}$/, { message: 'name must be a projection name: lower-case letters, digits and underscores' })
  name!: string;
}

export class RebuildParams extends ProjectionNameParams {
  @ApiProperty({ format: 'uuid' })
  @IsCanonicalUuid()
  id!: string;
}
