import { ENDPOINT_ACTIONS, PERMISSIONS, ROLES } from '@app/auth';

/**
 * The README's role table, generated from ENDPOINT_ACTIONS and PERMISSIONS (the tables the access
 * control enforces): `own` = only the caller's own resources, `any` = every user's, `-` = refused.
 */
export function roleTableMarkdown(): string {
  const header = `| Endpoint | Action | ${ROLES.join(' | ')} |\n|---|---|${ROLES.map(() => '---|').join('')}`;
  const rows = ENDPOINT_ACTIONS.map((endpoint) => `| \`${endpoint.method} ${endpoint.path}\` | \`${endpoint.action}\` | ${ROLES.map((role) => PERMISSIONS[endpoint.action][role] ?? '-').join(' | ')} |`);
  return [header, ...rows].join('\n');
}
