import type { LoggerService } from '@nestjs/common';
import type { Logger } from 'pino';

/** Nest's framework logs, written through the service's pino logger as structured lines. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...params: unknown[]): void {
    this.logger.info(fields(params), text(message));
  }

  error(message: unknown, ...params: unknown[]): void {
    const [stack] = params;
    this.logger.error({ ...fields(params), ...(typeof stack === 'string' && params.length > 1 ? { stack } : {}) }, text(message));
  }

  warn(message: unknown, ...params: unknown[]): void {
    this.logger.warn(fields(params), text(message));
  }

  debug(message: unknown, ...params: unknown[]): void {
    this.logger.debug(fields(params), text(message));
  }

  verbose(message: unknown, ...params: unknown[]): void {
    this.logger.trace(fields(params), text(message));
  }

  fatal(message: unknown, ...params: unknown[]): void {
    this.logger.fatal(fields(params), text(message));
  }
}

/** Nest passes the context (the class name) as the last parameter. */
function fields(params: readonly unknown[]): { context?: string } {
  const context = params[params.length - 1];
  return typeof context === 'string' ? { context } : {};
}

function text(message: unknown): string {
  return typeof message === 'string' ? message : JSON.stringify(message);
}
