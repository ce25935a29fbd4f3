// @ts-check
import eslint from '@eslint/js';
import { resolve } from 'node:path';
import tseslint from 'typescript-eslint';

// Kept out of the repository root (which holds only the Nest monorepo entries); `npm run lint` passes it with --config.
const root = resolve(import.meta.dirname, '..');

// Dependency rules (docs/architecture.md, "Layout"). A lib is imported by its alias, `@app/<lib>`;
// these rules say which aliases each lib may not use. ESLint replaces a rule's options when two
// config objects set it for one file, so every file gets exactly one `no-restricted-imports`,
// computed below from its lib and whether it is production code.
const LIBS = ['ledger', 'event-store', 'event-sourcing', 'projections', 'database', 'audit', 'auth', 'testing', 'token-accounts', 'payments', 'operations'];
/** Use cases of one area each: none may depend on another, so each can change (or go) alone. */
const FEATURES = ['token-accounts', 'payments', 'operations'];
/** Specs and test helpers, where `@app/testing` is allowed. */
const TEST_CODE = ['**/*.spec.ts', '**/*.e2e-spec.ts', '**/src/testing/**'];

const alias = (lib) => `@app/${lib}`;

/** Relative paths never reach into an app, or into another lib past its alias. */
const PATH_PATTERNS = [
  { regex: '(^|/)apps/', message: 'A lib never imports an app: apps depend on libs, not the reverse.' },
  { regex: `^(\\.\\./)+(libs/)?(${LIBS.join('|')})/src/`, message: 'Import another lib by its @app/<lib> alias, through its barrel.' },
];

const TESTING = { name: alias('testing'), message: 'Test fixtures stay out of production code; only apps/cli and apps/bench (seed, benches) and specs use @app/testing.' };

/** The `no-restricted-imports` options of a lib's files. */
function libRestrictions(lib, production) {
  const paths = [];
  const patterns = [...PATH_PATTERNS];
  if (lib === 'ledger') {
    patterns.push({ group: ['@app/*'], message: 'The ledger is the pure domain: it imports nothing of ours.' });
    patterns.push({ group: ['@nestjs/*', 'pg', 'pg/*', '@eventstore/db-client', 'class-validator'], message: 'The ledger is the pure domain: no framework, driver or validation library.' });
    return { paths, patterns };
  }
  const features = FEATURES.filter((feature) => feature !== lib);
  const message = FEATURES.includes(lib)
    ? 'Feature libs do not import each other: move what both need into a generic lib (event-sourcing, projections, ...), or compose them in the app.'
    : 'A generic lib does not depend on a feature lib.';
  for (const feature of features) paths.push({ name: alias(feature), message });
  if (production && lib !== 'testing') paths.push(TESTING);
  return { paths, patterns };
}

const dependencyRules = [
  ...LIBS.flatMap((lib) => [
    { files: [`libs/${lib}/**/*.ts`], ignores: TEST_CODE, rules: { 'no-restricted-imports': ['error', libRestrictions(lib, true)] } },
    { files: TEST_CODE.map((pattern) => `libs/${lib}/${pattern}`), rules: { 'no-restricted-imports': ['error', libRestrictions(lib, false)] } },
  ]),
  { files: ['apps/api/**/*.ts'], ignores: TEST_CODE, rules: { 'no-restricted-imports': ['error', { paths: [TESTING] }] } },
  // The client is a package of its own, for other repositories: the generated schema and openapi-fetch, nothing of the service.
  {
    files: ['libs/client/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [...PATH_PATTERNS, { group: ['@app/*', '@nestjs/*'], message: 'The client depends on its generated schema and openapi-fetch only: it is built and shipped without the service.' }] }],
    },
  },
];

export default tseslint.config(
  // libs/client/src/schema.ts is generated (npm run client:generate).
  { ignores: ['dist/**', '**/dist/**', 'node_modules/**', 'coverage/**', '*.js', '*.mjs', 'libs/client/src/schema.ts'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: ['./tsconfig.base.json'], tsconfigRootDir: root },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/ban-ts-comment': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Nest modules are classes with decorators and no members by design.
      '@typescript-eslint/no-extraneous-class': 'off',
    },
  },
  {
    files: ['**/*.spec.ts', '**/*.e2e-spec.ts', 'test/**/*.ts'],
    rules: {
      // supertest bodies are untyped JSON; specs assert on them directly.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  ...dependencyRules,
);
