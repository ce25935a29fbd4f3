import { HttpStatus } from '@nestjs/common';
import { CodedError } from '@app/ledger';
import { codedProblem } from './problem-details.filter.js';
import { ERROR_CODES, PROBLEM_TYPES, type ErrorCode } from './problem-types.js';

class Rejection extends CodedError<ErrorCode> {}

describe('PROBLEM_TYPES', () => {
  it('lists each code of every lib once', () => {
    expect(ERROR_CODES.filter((code, index) => ERROR_CODES.indexOf(code) !== index)).toEqual([]);
  });

  it('maps exactly the codes the libs declare, no more', () => {
    expect(Object.keys(PROBLEM_TYPES).sort()).toEqual([...ERROR_CODES].sort());
  });

  it.each([...ERROR_CODES])('maps %s to a 4xx or 5xx other than 500, with a title', (code) => {
    const { status, title }: { status: number; title: string } = PROBLEM_TYPES[code];
    expect(status >= 400 && status <= 599 && status !== 500).toBe(true);
    expect(title.trim()).not.toBe('');
  });

  it.each([...ERROR_CODES])('answers %s with a problem of its status, type and code', (code) => {
    const { status, title, publicCode } = PROBLEM_TYPES[code];
    const shown = publicCode ?? code;
    const body = codedProblem(new Rejection(code, 'what happened', { extra: 1 }), '/v1/somewhere');
    expect(body).toMatchObject({ type: `urn:token-ledger:problem:${shown.toLowerCase().replaceAll('_', '-')}`, title, status, code: shown, instance: '/v1/somewhere', extra: 1 });
    expect(body.detail).not.toBe('');
  });

  // VALIDATION_FAILED lists its violations in `errors`; METADATA_INVALID and INVALID_CURSOR name the field and rule in the details they are raised with.
  const NAMED_BY_THEIR_DETAILS: readonly ErrorCode[] = ['VALIDATION_FAILED', 'METADATA_INVALID', 'INVALID_CURSOR'];

  it.each(ERROR_CODES.filter((code) => PROBLEM_TYPES[code].status === HttpStatus.BAD_REQUEST && !NAMED_BY_THEIR_DETAILS.includes(code)))('names the refused field and its rule in every %s', (code) => {
    const body = codedProblem(new Rejection(code, 'refused', {}), '/v1/somewhere');
    expect(body).toMatchObject({ field: expect.stringMatching(/^[A-Za-z][A-Za-z-]*$/), rule: expect.stringMatching(/^[a-z][A-Za-z0-9]*$/) });
  });

  it("answers HOLD_TTL_OUT_OF_RANGE and LOT_EXPIRY_OUT_OF_RANGE with the request's field and the rule broken, and lets a raise that names another rule name it", () => {
    expect(codedProblem(new Rejection('HOLD_TTL_OUT_OF_RANGE', 'too long', { expiresInSeconds: 90_000, min: 1, max: 86_400 }), '/v1/x')).toMatchObject({
      field: 'expiresInSeconds',
      rule: 'range',
      expiresInSeconds: 90_000,
      max: 86_400,
    });
    expect(codedProblem(new Rejection('LOT_EXPIRY_OUT_OF_RANGE', 'past', {}), '/v1/x')).toMatchObject({ field: 'expiresAt', rule: 'afterNow' });
    expect(codedProblem(new Rejection('API_KEY_EXPIRY_INVALID', 'after its creator', { field: 'expiresAt', rule: 'notAfterCreatingKey' }), '/v1/x')).toMatchObject({
      field: 'expiresAt',
      rule: 'notAfterCreatingKey',
    });
  });

  it('answers every refused credential alike, whatever the reason, but for a signature made with another key and a lifetime only a genuine token can claim', () => {
    const told = ['TOKEN_SIGNATURE_INVALID', 'TOKEN_LIFETIME_TOO_LONG'];
    const reasons = ERROR_CODES.filter((code) => PROBLEM_TYPES[code].publicCode === 'UNAUTHENTICATED' && !told.includes(code));
    expect(codedProblem(new Rejection('TOKEN_LIFETIME_TOO_LONG', 'the rule', {}), '/v1/x')).toMatchObject({ status: 401, code: 'UNAUTHENTICATED', detail: 'the rule' });
    expect(reasons).toContain('TOKEN_EXPIRED');
    const bodies = reasons.map((code) => codedProblem(new Rejection(code, `secret reason ${code}`, {}), '/v1/x'));
    expect(new Set(bodies.map((body) => JSON.stringify(body))).size).toBe(1);
    // The operator's usual mistake (a token minted with another DATA_DIR) is named; the reason written for the log is not.
    const signature = codedProblem(new Rejection('TOKEN_SIGNATURE_INVALID', 'secret reason TOKEN_SIGNATURE_INVALID', {}), '/v1/x');
    expect(signature).toEqual({ ...bodies[0], detail: "the token's signature does not verify with this server's key: it was signed with another secret or key (for a development token: minted with another DATA_DIR)" });
    expect(bodies[0]).toEqual({
      type: 'urn:token-ledger:problem:unauthenticated',
      title: 'Authentication required',
      status: 401,
      code: 'UNAUTHENTICATED',
      detail: 'missing or invalid credentials: send Authorization: Bearer <JWT> or X-API-Key',
      instance: '/v1/x',
    });
  });
});
