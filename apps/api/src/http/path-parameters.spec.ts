import { tooLongParameterOf, type RoutePath } from './path-parameters.js';

const route = (method: string, path: string): RoutePath => ({ method, segments: path.split('/') });
const ROUTES = [
  route('GET', '/v1/accounts/:userId/balance'),
  route('POST', '/v1/accounts/:userId/holds/:holdId/release'),
  route('GET', '/v1/admin/projections/:name/rebuilds/:id'),
];
const long = 'a'.repeat(11);
const short = 'a'.repeat(10);

describe('tooLongParameterOf', () => {
  it('names the parameter longer than the limit in the route the path fits, a HEAD fitting its GET', () => {
    expect(tooLongParameterOf('GET', `/v1/accounts/${long}/balance`, ROUTES, 10)).toBe('userId');
    expect(tooLongParameterOf('HEAD', `/v1/accounts/${long}/balance?at=1`, ROUTES, 10)).toBe('userId');
    expect(tooLongParameterOf('POST', `/v1/accounts/${short}/holds/${long}/release`, ROUTES, 10)).toBe('holdId');
    expect(tooLongParameterOf('GET', `/v1/admin/projections/${long}/rebuilds/${long}`, ROUTES, 10)).toBe('name');
  });

  it('measures the value decoded, as the router does', () => {
    expect(tooLongParameterOf('GET', `/v1/accounts/${'%61'.repeat(10)}/balance`, ROUTES, 10)).toBeUndefined();
    expect(tooLongParameterOf('GET', `/v1/accounts/${'%61'.repeat(11)}/balance`, ROUTES, 10)).toBe('userId');
  });

  it('finds nothing where no route has the path: another method, another word, another length', () => {
    expect(tooLongParameterOf('POST', `/v1/accounts/${long}/balance`, ROUTES, 10)).toBeUndefined();
    expect(tooLongParameterOf('GET', `/v1/accounts/${long}/nothing`, ROUTES, 10)).toBeUndefined();
    expect(tooLongParameterOf('GET', `/v1/accounts/${long}/balance/more`, ROUTES, 10)).toBeUndefined();
  });
});
