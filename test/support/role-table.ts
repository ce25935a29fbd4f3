import { ACTION_SCOPES, ENDPOINT_ACTIONS, PERMISSIONS, ROLES } from '@app/auth';

/**
 * The README's role table, generated from ENDPOINT_ACTIONS, ACTION_SCOPES and PERMISSIONS (the tables
 * the access control enforces): `own` = only the caller's own resources, `any` = every user's, `-` =
 * refused; an API key also needs the scope.
 */
export function roleTableMarkdown(): string {
  const header = `| Endpoint | Action | API key scope | ${ROLES.join(' | ')} |\n|---|---|---|${ROLES.map(() => '---|').join('')}`;
  const rows = ENDPOINT_ACTIONS.map(
    (endpoint) =>
      `| \`${endpoint.method} ${endpoint.path}\` | \`${endpoint.action}\` | \`${ACTION_SCOPES[endpoint.action]}\` | ${ROLES.map((role) => PERMISSIONS[endpoint.action][role] ?? '-').join(' | ')} |`,
  );
  return [header, ...rows].join('\n');
}
