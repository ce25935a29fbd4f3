import { AuthConfigError, loadAuthConfig, type AuthConfig } from '@app/auth';
import { ConfigError, loadConfig, type AppConfig } from './app.config.js';

export type ServiceSettings = {
  readonly config: AppConfig;
  readonly authConfig: AuthConfig;
};

/**
 * Every setting of the service, checked at once: a ConfigError lists every problem of both the
 * service's and the authentication settings in one message, so an operator fixes them in one round.
 */
export function loadServiceSettings(environment: NodeJS.ProcessEnv): ServiceSettings {
  const problems: string[] = [];
  const config = collect(() => loadConfig(environment), problems);
  const authConfig = collect(() => loadAuthConfig(environment), problems);
  if (config === undefined || authConfig === undefined) throw new ConfigError([...new Set(problems)]);
  return { config, authConfig };
}

function collect<T>(load: () => T, problems: string[]): T | undefined {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof AuthConfigError)) throw error;
    problems.push(...error.problems);
    return undefined;
  }
}
