/** The service's clock for controllers (`CreateAppOptions.clock` in tests; the system's otherwise): `() => Date`. */
export const APP_CLOCK = Symbol('APP_CLOCK');
