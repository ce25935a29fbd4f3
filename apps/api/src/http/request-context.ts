import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';

type RequestContext = { readonly requestId: string };

const storage = new AsyncLocalStorage<RequestContext>();

/**
 * The service logger's mixin (pino's `mixin` option): every line written while a request is being
 * handled carries its `requestId`, whoever writes it (a controller, Nest's exception filter with a
 * 500's stack, a lib's Logger), without passing the request around.
 */
export function requestIdMixin(): { requestId?: string } {
  const context = storage.getStore();
  return context === undefined ? {} : { requestId: context.requestId };
}

/**
 * Runs the rest of each request inside its context. First of the request hooks, in callback form:
 * Fastify calls the next hooks and the handler from `done`, so they run inside `storage.run`. The
 * body is parsed in the request stream's events, which carry no context: preValidation, right after
 * the parsing, enters it again for the handler and the hooks after it.
 */
export function registerRequestContext(fastify: FastifyInstance): void {
  const enter = (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    storage.run({ requestId: request.id }, done);
  };
  fastify.addHook('onRequest', enter);
  fastify.addHook('preValidation', enter);
}
