import { createHmac, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { RawBodyRequest } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

export const WEBHOOK_SIGNATURE_HEADER = 'x-mock-signature';
/** Injection token of the webhook HMAC secret. */
export const WEBHOOK_SECRET = Symbol('WEBHOOK_SECRET');

/** `sha256=<hex HMAC-SHA256 of the raw body>`, the header value the mock provider sends. */
export function signWebhook(secret: string, rawBody: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

/**
 * Admits a webhook only when its signature header is the HMAC-SHA256 of the exact bytes received,
 * compared in constant time. It runs before validation and the handler: a bad or missing signature
 * is a 401 and nothing else happens.
 */
@Injectable()
export class WebhookSignatureGuard implements CanActivate {
  constructor(@Inject(WEBHOOK_SECRET) private readonly secret: string) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<RawBodyRequest<FastifyRequest>>();
    const header = request.headers[WEBHOOK_SIGNATURE_HEADER];
    const rawBody = request.rawBody;
    if (typeof header !== 'string' || rawBody === undefined) throw new UnauthorizedException('missing webhook signature');
    const expected = Buffer.from(signWebhook(this.secret, rawBody));
    const received = Buffer.from(header);
    // timingSafeEqual needs equal lengths; the length of a well-formed signature is public anyway.
    if (received.length !== expected.length || !timingSafeEqual(received, expected)) throw new UnauthorizedException('bad webhook signature');
    return true;
  }
}
