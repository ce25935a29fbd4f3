/**
 * What the commands that work on the database load when they run (cli.ts imports this module
 * dynamically): the database, projections and seeding libraries take most of a second to load, which
 * `token`, `audit verify-bundle` and `--version` do not need. A relative module, because the build
 * rewrites the `@app/*` paths of static imports only.
 */
export { migrateDatabase } from '@app/database';
export { ProjectionsAdmin } from '@app/operations';
export { seedHistory } from '@app/testing';
export { SingleBar } from 'cli-progress';
export { connect } from './database.js';
