import { applyDecorators } from '@nestjs/common';
import { Transform } from 'class-transformer';
import { IsUUID } from 'class-validator';

/**
 * A UUID, in its canonical lower-case form. Upper and lower case name the same UUID, but stream ids
 * and payment ids are compared as text: without this, `ABC…` and `abc…` would be two accounts, and a
 * payment id credited under one could be credited again under the other.
 */
export function IsCanonicalUuid(): PropertyDecorator {
  return applyDecorators(
    Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.toLowerCase() : value)),
    IsUUID('all'),
  );
}
