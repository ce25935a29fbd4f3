import { createHmac, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { RawBodyRequest } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { PaymentsError } from '@app/payments';

export const WEBHOOK_SIGNATURE_HEADER = 'x-mock-signature';
/** Injection token of the webhook settings: the HMAC secret and the timestamp tolerance. */
export const WEBHOOK_SETTINGS = Symbol('WEBHOOK_SETTINGS');

export type WebhookSettings = {
  /** The mock provider's secret; null when the mock is not this service's provider. */
  readonly secret: string | null;
  /** How far a delivery's timestamp may be from our clock, either way (default 300 s). */
  readonly toleranceSeconds: number;
  /** The clock, in milliseconds; tests inject one. */
  readonly nowMs?: () => number;
};

/** The longest header we parse: a timestamp and a handful of signatures (a secret rotation sends two). */
const SIGNATURE_HEADER_LENGTH_MAX = 1_000;
const HEX_SHA256 = /^[0-9a-f]{64}$/;

/** The hex HMAC-SHA256 of `<t>.<raw body>`: what each `v1` of the header is. */
function signatureOf(secret: string, timestampSeconds: number, rawBody: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.`).update(rawBody).digest('hex');
}

/**
 * The header the mock provider sends, in Stripe's scheme: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<raw body>">`. During a secret rotation a provider sends one `v1` per secret.
 */
export function signWebhook(secrets: string | readonly string[], rawBody: string | Buffer, timestampSeconds = Math.floor(Date.now() / 1000)): string {
  const signatures = (typeof secrets === 'string' ? [secrets] : secrets).map((secret) => `v1=${signatureOf(secret, timestampSeconds, rawBody)}`);
  return [`t=${timestampSeconds}`, ...signatures].join(',');
}

/** `t` and every `v1` of a signature header; undefined when it is not one. Other schemes' entries are ignored. */
export function parseSignatureHeader(header: string): { timestampSeconds: number; signatures: string[] } | undefined {
  if (header.length > SIGNATURE_HEADER_LENGTH_MAX) return undefined;
  let timestampSeconds: number | undefined;
  const signatures: string[] = [];
  for (const item of header.split(',')) {
    const [key, value] = item.trim().split('=', 2);
    if (key === 't' && value !== undefined && /^\d{1,12}$/.test(value)) timestampSeconds = Number(value);
    else if (key === 'v1' && value !== undefined && HEX_SHA256.test(value)) signatures.push(value);
  }
  return timestampSeconds === undefined || signatures.length === 0 ? undefined : { timestampSeconds, signatures };
}

/**
 * Admits a webhook only when one `v1` of its signature header is the HMAC-SHA256 of its timestamp
 * and the exact bytes received (compared in constant time), and that timestamp is within the
 * tolerance of our clock: a captured delivery cannot be replayed later, and within the tolerance a
 * replay is answered without effect (the delivery's event id was processed). It runs before
 * validation and the handler: a refusal is 401 WEBHOOK_SIGNATURE_INVALID, as the Stripe route's is,
 * saying whether the header was missing, malformed, did not verify or was outside the tolerance, and
 * nothing else happens.
 */
@Injectable()
export class WebhookSignatureGuard implements CanActivate {
  constructor(@Inject(WEBHOOK_SETTINGS) private readonly settings: WebhookSettings) {}

  canActivate(context: ExecutionContext): boolean {
    const { secret } = this.settings;
    if (secret === null) throw new PaymentsError('PROVIDER_NOT_CONFIGURED', "this service's payment provider is not the mock: its webhook route takes nothing");
    const request = context.switchToHttp().getRequest<RawBodyRequest<FastifyRequest>>();
    const header = request.headers[WEBHOOK_SIGNATURE_HEADER];
    const rawBody = request.rawBody;
    if (typeof header !== 'string') throw refused(`the ${WEBHOOK_SIGNATURE_HEADER} header is missing`);
    if (rawBody === undefined) throw refused(`the request has no JSON body for ${WEBHOOK_SIGNATURE_HEADER} to be the signature of`);
    const parsed = parseSignatureHeader(header);
    if (parsed === undefined) throw refused(`${WEBHOOK_SIGNATURE_HEADER} is malformed: expected t=<unix seconds>,v1=<hex HMAC-SHA256>`);
    const expected = Buffer.from(signatureOf(secret, parsed.timestampSeconds, rawBody), 'hex');
    // Every candidate is compared, so the time taken does not say which one matched; all are 32 bytes.
    const matches = parsed.signatures.map((signature) => timingSafeEqual(Buffer.from(signature, 'hex'), expected));
    if (!matches.includes(true)) throw refused(`${WEBHOOK_SIGNATURE_HEADER} does not verify: no v1 is the HMAC-SHA256 of its timestamp and this body with the webhook secret`);
    const nowSeconds = (this.settings.nowMs ?? Date.now)() / 1000;
    if (Math.abs(nowSeconds - parsed.timestampSeconds) > this.settings.toleranceSeconds) {
      throw refused(`the ${WEBHOOK_SIGNATURE_HEADER} timestamp is outside the tolerance of ${this.settings.toleranceSeconds} s of our clock`);
    }
    return true;
  }
}

function refused(message: string): PaymentsError {
  return new PaymentsError('WEBHOOK_SIGNATURE_INVALID', message);
}
