import { Logger, type LoggerService } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { ProjectionsAdmin } from '@app/operations';
import type { ProjectionStatus } from '@app/projections';
import { ReadModelsHealthIndicator } from './health.controller.js';

/** Nest's log lines of the test, level and message. */
const lines: string[] = [];
const capture: LoggerService = {
  log: (message: unknown) => lines.push(`log ${String(message)}`),
  warn: (message: unknown) => lines.push(`warn ${String(message)}`),
  error: (message: unknown) => lines.push(`error ${String(message)}`),
};

beforeAll(() => Logger.overrideLogger(capture));
afterAll(() => Logger.overrideLogger(new Logger()));

describe('the read models check’s log', () => {
  it('warns while a projection is behind (not on every probe, though its lag moves), and logs it up again only once it passes', async () => {
    let statuses: Partial<ProjectionStatus>[] = [{ name: 'token_accounts', state: 'running', lagSeconds: 0 }];
    const projections = { status: () => Promise.resolve(statuses) } as unknown as ProjectionsAdmin;
    const readModels = new ReadModelsHealthIndicator(projections, new HealthIndicatorService(), { maxProjectionLagMs: 60_000 });
    expect(await readModels.check('readModels')).toMatchObject({ readModels: { status: 'up' } });
    for (const lagSeconds of [61, 75, 90]) {
      statuses = [{ name: 'token_accounts', state: 'running', lagSeconds }];
      expect(await readModels.check('readModels')).toMatchObject({ readModels: { status: 'down' } });
    }
    statuses = [{ name: 'token_accounts', state: 'failed', lagSeconds: 95 }];
    await readModels.check('readModels');
    statuses = [{ name: 'token_accounts', state: 'running', lagSeconds: 1 }];
    expect(await readModels.check('readModels')).toMatchObject({ readModels: { status: 'up' } });
    expect(lines).toEqual([
      'warn the readModels check is down: projections behind by more than 60 s or failed: token_accounts (running)',
      'warn the readModels check is down: projections behind by more than 60 s or failed: token_accounts (failed) (still)',
      'log the readModels check is up again',
    ]);
  });
});
