// Session against a live SkinDoc server: stored refresh tokens, renewal on a 401, files, sign-up and sign-out.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { Session } from '../index.js';

const { SKINDOC_URL: url, SKINDOC_PATIENT_EMAIL: email, SKINDOC_PASSWORD: password } = process.env;

/** The Web Storage interface over a Map, as sessionStorage would be in a browser. */
function mapStorage() {
  const items = new Map();
  return { getItem: (k) => (items.has(k) ? items.get(k) : null), setItem: (k, v) => items.set(k, v), removeItem: (k) => items.delete(k) };
}

test('a stored refresh token resumes the session after a reload', async () => {
  const storage = mapStorage();
  const first = new Session({ baseUrl: url, storage, storageKey: 'skindoc.test.refresh' });
  const user = await first.signIn(email, password);
  assert.equal(storage.getItem('skindoc.test.refresh'), first.refreshToken);
  const reloaded = new Session({ baseUrl: url, storage, storageKey: 'skindoc.test.refresh' });
  assert.equal(await reloaded.restore(), true);
  assert.equal((await reloaded.loadUser()).id, user.id);
  assert.equal(await new Session({ baseUrl: url, storage: mapStorage() }).restore(), false);  // nothing stored
  await reloaded.signOut();
});

test('a rejected access token is renewed once and the call repeated, for JSON and for files', async () => {
  const session = new Session({ baseUrl: url });
  const user = await session.signIn(email, password);
  let renewals = 0;
  session.onTokens(() => { renewals += 1; });
  session.accessToken = 'expired-or-garbage';
  assert.equal((await session.get('/api/v1/me')).user.id, user.id);
  assert.equal(renewals, 1);
  session.accessToken = 'expired-or-garbage';
  const file = await session.blob('/api/v1/me');
  assert.equal(JSON.parse(await file.text()).user.id, user.id);
  assert.equal(renewals, 2);
  await session.signOut();
});

test('a refused refresh token signs the session out; signing out revokes it', async () => {
  const storage = mapStorage();
  const session = new Session({ baseUrl: url, storage });
  await session.signIn(email, password);
  const revoked = session.refreshToken;
  let signedOut = 0;
  session.onSignedOut(() => { signedOut += 1; });
  await session.signOut();
  assert.equal(signedOut, 1);
  assert.equal(session.signedIn, false);
  assert.equal(storage.getItem('skindoc.refresh'), null);

  const stale = new Session({ baseUrl: url, refreshToken: revoked });
  stale.onSignedOut(() => { signedOut += 1; });
  await assert.rejects(stale.restore(), { status: 401 });
  assert.equal(signedOut, 2);
  assert.equal(stale.refreshToken, null);
});

test('sign-up creates the account and signs in; server errors arrive as typed values', async () => {
  const session = new Session({ baseUrl: url });
  const fresh = `js-new-${randomBytes(4).toString('hex')}@example.org`;
  const user = await session.signUp({ email: fresh, password, name: 'New Patient', role: 'patient' });
  assert.equal(user.role, 'patient');
  assert.equal((await session.loadUser()).email, fresh);
  await assert.rejects(new Session({ baseUrl: url }).signUp({ email: fresh, password, name: 'Again', role: 'patient' }),
    { status: 409 });
  await assert.rejects(session.post('/api/v1/consultations', { description: '', body_site: 'arm' }),
    (error) => error.status === 422 && typeof error.code === 'string' && error.field !== null);
  await session.signOut();
});

test('no server answering is a retryable network error', async () => {
  const session = new Session({ baseUrl: 'http://127.0.0.1:9' });
  await assert.rejects(session.signIn(email, password), (error) => error.code === 'network' && error.retryable);
});
