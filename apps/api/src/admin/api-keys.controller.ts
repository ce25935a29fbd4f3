import { Body, Controller, Delete, Get, HttpCode, HttpStatus, Param, Post, Req } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiKeyNotFoundError, ApiKeyRepository, callerName, type ApiKeyRecord } from '@app/auth';
import type { FastifyRequest } from 'fastify';
import { actorOf } from '../auth/access-control.js';
import { EmptyBody, NoBody } from '../http/no-body.js';
import { ApiProblems } from '../openapi/api-problems.decorator.js';
import { ApiKeyIdParams, CreateApiKeyRequest } from './api-keys.dto.js';
import { ApiKeyListResponse, ApiKeyResponse, CreatedApiKeyResponse } from './api-keys.responses.js';

/**
 * Service API keys, as the CLI's `api-keys` commands manage them: create (the secret is in that one
 * response, never stored or shown again), list, revoke. Idempotency-Key is not honoured here: a
 * stored response would keep the secret.
 */
@ApiTags('admin')
@Controller({ path: 'admin/api-keys', version: '1' })
export class ApiKeysController {
  constructor(private readonly keys: ApiKeyRepository) {}

  @Get()
  @ApiOperation({ operationId: 'listApiKeys', summary: 'List the API keys' })
  @ApiOkResponse({ type: ApiKeyListResponse, description: 'Every key, newest first: id, name, role, scopes, created, expires, revoked, last used. Never a secret.' })
  async list() {
    return { data: (await this.keys.list()).map(view) };
  }

  @Post()
  @HttpCode(HttpStatus.CREATED)
  @ApiOperation({
    operationId: 'createApiKey',
    summary: 'Create an API key',
    description: 'The secret is in this response only. Idempotency-Key is refused here (a stored response would keep the secret). 400 API_KEY_SCOPE_INVALID (a scope the role cannot use), API_KEY_EXPIRY_INVALID (not in the future; or, created by an API key that expires, none or later than its expiry, with latest), API_KEY_REPLACES_INVALID (replaces names no key of the role).',
  })
  @ApiCreatedResponse({ type: CreatedApiKeyResponse, description: 'The key (`key`, shown only in this response) and its record.' })
  @ApiProblems('API_KEY_SCOPE_INVALID', 'API_KEY_EXPIRY_INVALID', 'API_KEY_REPLACES_INVALID', 'API_KEY_NAME_TAKEN')
  async create(@Body() body: CreateApiKeyRequest, @Req() request: FastifyRequest) {
    const { key, record } = await this.keys.create({
      name: body.name,
      role: body.role,
      scopes: body.scopes,
      expiresAt: body.expiresAt === undefined || body.expiresAt === null ? null : new Date(body.expiresAt),
      replaces: body.replaces ?? null,
      grantor: actorOf(request),
    });
    return { key, ...view(record) };
  }

  @Delete(':id')
  @ApiOperation({ operationId: 'revokeApiKey', summary: 'Revoke an API key', description: '403 FORBIDDEN with missingScopes when an API key revokes a key holding scopes it does not (it may revoke only what it could have created).' })
  @ApiOkResponse({ type: ApiKeyResponse, description: 'The key, revoked (revoking a revoked key changes nothing).' })
  @ApiProblems('API_KEY_NOT_FOUND')
  async revoke(@Param() { id }: ApiKeyIdParams, @NoBody() _body: EmptyBody, @Req() request: FastifyRequest) {
    const caller = actorOf(request);
    if (caller === undefined) throw new Error(`no caller on ${request.method} ${request.url}`);
    if ((await this.keys.revoke(id, callerName(caller), caller)) === 'not_found') throw new ApiKeyNotFoundError(id);
    const record = await this.keys.find(id);
    if (record === undefined) throw new ApiKeyNotFoundError(id);
    return view(record);
  }
}

function view(record: ApiKeyRecord) {
  return {
    id: record.id,
    name: record.name,
    role: record.role,
    scopes: record.scopes,
    createdAt: record.createdAt.toISOString(),
    expiresAt: record.expiresAt?.toISOString() ?? null,
    revokedAt: record.revokedAt?.toISOString() ?? null,
    lastUsedAt: record.lastUsedAt?.toISOString() ?? null,
    createdBy: record.createdBy,
    revokedBy: record.revokedBy,
    idempotencyScope: record.idempotencyScope,
  };
}
