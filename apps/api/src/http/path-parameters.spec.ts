import { badlyEncodedParameterOf, tooLongParameterOf, type RoutePath } from './path-parameters.js';

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

describe('badlyEncodedParameterOf', () => {
  it('names the parameter whose value is not valid percent-encoding in the route the path fits', () => {
    expect(badlyEncodedParameterOf('GET', '/v1/accounts/%E0%A4%A/balance', ROUTES)).toBe('userId');
    expect(badlyEncodedParameterOf('HEAD', '/v1/accounts/%zz/balance?at=1', ROUTES)).toBe('userId');
    expect(badlyEncodedParameterOf('POST', `/v1/accounts/${short}/holds/%FF/release`, ROUTES)).toBe('holdId');
    expect(badlyEncodedParameterOf('GET', '/v1/admin/projections/x/rebuilds/%ED%A0%80', ROUTES)).toBe('id');
  });

  it('finds nothing where every value decodes, or where no route has the path', () => {
    expect(badlyEncodedParameterOf('GET', '/v1/accounts/%F0%9F%8E%89/balance', ROUTES)).toBeUndefined();
    expect(badlyEncodedParameterOf('GET', '/v1/accounts/%E0%A4%A/nothing', ROUTES)).toBeUndefined();
    expect(badlyEncodedParameterOf('POST', '/v1/accounts/%E0%A4%A/balance', ROUTES)).toBeUndefined();
  });
});
