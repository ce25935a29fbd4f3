import { createPublicKey, type KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import { Controller, Get, Inject, Param, Query, StreamableFile } from '@nestjs/common';
import { ApiExtraModels, ApiOkResponse, ApiOperation, ApiTags, getSchemaPath } from '@nestjs/swagger';
import { AccountAudit, type AuditEvent } from '@app/operations';
import { keyId } from '@app/audit';
import { UserIdParams } from '../accounts/accounts.dto.js';
import { AUDIT_SIGNING_KEY } from './audit-signing-key.js';
import { APP_CLOCK } from '../app-clock.js';
import { AuditBalanceQuery, AuditEventsQuery } from './audit.dto.js';
import { ApiProblems } from '../openapi/api-problems.decorator.js';
import { AuditBalanceResponse, AuditEventPageResponse, AuditVerifyResponse, SigningKeyResponse } from './audit.responses.js';

const NDJSON = 'application/x-ndjson; charset=utf-8';

/** The auditor's view of an account: raw stream, as-of balances, verification, signed bundles. Reads only. */
@ApiTags('audit')
@ApiExtraModels(AuditEventPageResponse)
@Controller({ path: 'audit', version: '1' })
export class AuditController {
  constructor(
    private readonly audit: AccountAudit,
    @Inject(AUDIT_SIGNING_KEY) private readonly signingKey: KeyObject,
    @Inject(APP_CLOCK) private readonly clock: () => Date,
  ) {}

  @Get('signing-key')
  @ApiOperation({ operationId: 'getAuditSigningKey', summary: 'Read the key that verifies audit bundles' })
  @ApiOkResponse({ type: SigningKeyResponse, description: 'The public key (PEM, SPKI) that verifies audit bundles, and its key id (SHA-256 of the SPKI DER).' })
  publicKey() {
    const publicKey = createPublicKey(this.signingKey);
    return { algorithm: 'Ed25519', keyId: keyId(publicKey), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
  }

  @Get('accounts/:userId/events')
  @ApiOperation({ operationId: 'listAuditEvents', summary: 'Read the raw event stream of an account' })
  @ApiOkResponse({
    description: "A page of the raw stream and the next page's fromRevision; with format=ndjson (and no fromRevision or limit), the whole stream, one event per line.",
    content: {
      'application/json': { schema: { $ref: getSchemaPath(AuditEventPageResponse) } },
      'application/x-ndjson': { schema: { type: 'string', description: 'One event (as in data[] of the JSON page) per line.' } },
    },
  })
  @ApiProblems('ACCOUNT_NOT_FOUND')
  async events(@Param() { userId }: UserIdParams, @Query() query: AuditEventsQuery) {
    const page = query.page();
    if (page === null) return new StreamableFile(Readable.from(ndjsonLines(await this.audit.pages(userId))), { type: NDJSON });
    return { userId, ...(await this.audit.page(userId, page.fromRevision, page.limit)) };
  }

  @Get('accounts/:userId/balance')
  @ApiOperation({ operationId: 'getAuditBalance', summary: 'Replay the balance of an account as of a time or revision' })
  @ApiOkResponse({ type: AuditBalanceResponse, description: 'The balance, held total, active holds and live lots replayed from the stream to the point, and the last revision applied (-1 before the first event). As of a time, holds and lots past their expiry then count as expired even when the stream records it later (`expiredUnrecorded`), as every decision from that instant counts them. For an account with payment disputes also its shortfall and every dispute (ADR 0024).' })
  @ApiProblems('ACCOUNT_NOT_FOUND', 'REVISION_OUT_OF_RANGE', 'STREAM_NOT_REPLAYABLE')
  async balance(@Param() { userId }: UserIdParams, @Query() query: AuditBalanceQuery) {
    return { userId, ...(await this.audit.balanceAsOf(userId, query.asOf(this.clock()))) };
  }

  @Get('accounts/:userId/verify')
  @ApiOperation({ operationId: 'verifyAccount', summary: 'Verify the hash chain and read models of an account' })
  @ApiOkResponse({ type: AuditVerifyResponse, description: 'The hash chain (anchored to the stored stream revision) and every difference between the replay and the read models.' })
  @ApiProblems('ACCOUNT_NOT_FOUND', 'ACCOUNT_CHECKS_BUSY')
  async verify(@Param() { userId }: UserIdParams) {
    return { userId, ...(await this.audit.verify(userId)) };
  }

  @Get('accounts/:userId/bundle')
  @ApiOperation({ operationId: 'getAuditBundle', summary: 'Download a signed audit bundle of an account' })
  @ApiOkResponse({
    description: 'The signed audit bundle: one line per event, then the signed head. Check it with `npm run cli -- audit verify-bundle <file>`.',
    content: { 'application/x-ndjson': { schema: { type: 'string' } } },
  })
  @ApiProblems('ACCOUNT_NOT_FOUND', 'CHAIN_BROKEN', 'STREAM_NOT_REPLAYABLE')
  async bundle(@Param() { userId }: UserIdParams) {
    // Written as it is read: the stream is checked whole first (a broken chain is a 409 before any line), then its lines are sent a page at a time.
    const { streamId, lines } = await this.audit.bundle(userId, this.signingKey, this.clock);
    return new StreamableFile(Readable.from(lines), { type: NDJSON, disposition: `attachment; filename="${streamId}.audit.ndjson"` });
  }
}

/** One line per event, produced a page at a time as the response is read. */
async function* ndjsonLines(pages: AsyncIterable<readonly AuditEvent[]>): AsyncGenerator<string> {
  for await (const page of pages) yield page.map((event) => `${JSON.stringify(event)}\n`).join('');
}
