/**
 * A route's hooks of one kind, as Fastify accepts them in route options (none, one or a list), with
 * `hook` added first or last. Hooks bound to a route when it is added cost nothing on other routes
 * and need no per-request lookup of the route.
 */
export function withHook<Hook>(hooks: Hook | readonly Hook[] | undefined, hook: Hook, position: 'first' | 'last'): Hook[] {
  const existing: readonly Hook[] = hooks === undefined ? [] : Array.isArray(hooks) ? (hooks as readonly Hook[]) : [hooks as Hook];
  return position === 'first' ? [hook, ...existing] : [...existing, hook];
}
