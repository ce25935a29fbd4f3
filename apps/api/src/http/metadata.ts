import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import { METADATA_KEY_PATTERN, METADATA_KEYS_MAX, METADATA_RULES, METADATA_STRING_LENGTH_MAX, metadataViolation } from '@app/ledger';
import { IsOptional, ValidateBy } from 'class-validator';

const SCHEMA = {
  type: 'object' as const,
  maxProperties: METADATA_KEYS_MAX,
  additionalProperties: { oneOf: [{ type: 'string', maxLength: METADATA_STRING_LENGTH_MAX }, { type: 'number' }, { type: 'boolean' }] },
  example: { model: 'gpt-4o', requestId: 'req_8f2c', cached: false },
};

const RULES_TEXT =
  `A flat object: at most ${METADATA_KEYS_MAX} keys matching ${METADATA_KEY_PATTERN.source}, values strings (at most ${METADATA_STRING_LENGTH_MAX} characters), ` +
  'finite numbers or booleans; no nested objects, arrays or null values. A broken rule is 400 naming it (metadataKeysMax, metadataKey, metadataValueType, ...).';

/**
 * The caller's optional metadata, checked by the ledger's own rule (`metadataViolation`): the
 * problem names the one rule broken (one validator per rule, so the rule is the constraint's name).
 */
export function IsMetadata(description: string): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({ ...SCHEMA, nullable: true, description: `${description} ${RULES_TEXT}` }),
    IsOptional(),
    ...METADATA_RULES.map((rule) =>
      ValidateBy({
        name: rule,
        validator: {
          validate: (value: unknown) => metadataViolation(value)?.rule !== rule,
          defaultMessage: (validation) => metadataViolation(validation?.value)?.message ?? `metadata breaks ${rule}`,
        },
      }),
    ),
  );
}

/** The metadata member of a response. */
export function MetadataResponse(description: string): PropertyDecorator {
  return ApiProperty({ ...SCHEMA, nullable: true, description });
}
