import type { EventMetadata } from '@app/event-store';

/** Who and what asked for a command; recorded in the metadata of every event it appends. */
export type CommandContext = {
  readonly requestId: string;
};

export const EVENT_SCHEMA_VERSION = 1;

export function eventMetadata(context: CommandContext): EventMetadata {
  return { schemaVersion: EVENT_SCHEMA_VERSION, requestId: context.requestId, correlationId: context.requestId };
}
