import { applyDecorators } from '@nestjs/common';
import { Transform } from 'class-transformer';
import { IsUUID } from 'class-validator';

/**
 * A UUID, in its canonical lower-case form. Upper and lower case name the same UUID, but stream ids
 * and payment ids are compared as text: without this, `ABC…` and `abc…` would be two accounts, and a
 * payment id credited under one could be credited again under the other.
 *
 * Any 32 hex digits in the 8-4-4-4-12 form, whatever their version and variant digits: the rule of
 * a token's subject (`JwtVerifier`), the CLI, PostgreSQL's `uuid` and JSON Schema's `format: uuid`.
 * Apps bring their own user ids (an MD5 name cast to uuid, SQL Server's sequential ids), and one a
 * token was accepted for must be one the routes take.
 */
export function IsCanonicalUuid(): PropertyDecorator {
  return applyDecorators(
    Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.toLowerCase() : value)),
    IsUUID('loose'),
  );
}
