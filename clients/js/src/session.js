// Sign-in and token renewal over the HTTP API: the access token is renewed before it runs out, every
// authenticated call renews it once on a 401, and a refused renewal signs the session out.

import { SkinDocError, networkError } from './errors.js';

const AUTH = '/api/v1/auth';

/** A minute before the access token runs out, or half-way through a short lifetime: the renewal itself needs
 * time on a slow network, and the expiry is in whole seconds. */
const renewAfterMs = (expiresInS) => Math.max(expiresInS * 500, expiresInS * 1000 - 60000);

/** The Web Storage interface over a Map, for clients that keep the refresh token nowhere else. */
function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => { items.set(key, String(value)); },
    removeItem: (key) => { items.delete(key); },
  };
}

export class Session {
  /**
   * @param {object} options baseUrl ("https://skindoc.example"; '' in a page the server itself served),
   *   fetch (default: the global one), storage (a Web Storage such as sessionStorage, where the refresh token
   *   is kept so a reload resumes; default: memory only), storageKey, refreshToken (a stored one, to resume
   *   without a password).
   */
  constructor({ baseUrl = '', fetch = (...args) => globalThis.fetch(...args), storage = memoryStorage(),
    storageKey = 'skindoc.refresh', refreshToken = null } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.fetch = fetch;
    this.storage = storage;
    this.storageKey = storageKey;
    if (refreshToken) storage.setItem(storageKey, refreshToken);
    this.accessToken = null;
    this.user = null;
    this.listeners = { tokens: new Set(), signedOut: new Set() };
    this.renewal = null;
    this.refreshing = null;
  }

  get refreshToken() { return this.storage.getItem(this.storageKey); }
  get signedIn() { return this.accessToken !== null; }

  /** `listener(session)` after every sign-in and renewal. */
  onTokens(listener) { return this.listen('tokens', listener); }
  /** `listener(session)` when the session ends: signed out, or its refresh token refused. */
  onSignedOut(listener) { return this.listen('signedOut', listener); }

  listen(kind, listener) {
    this.listeners[kind].add(listener);
    return () => this.listeners[kind].delete(listener);
  }

  async signIn(email, password) {
    this.adopt(await this.post(`${AUTH}/login`, { email, password }, false));
    return this.user;
  }

  /** Creates the account (`fields`: email, password, name, role) and signs in with it. */
  async signUp(fields) {
    await this.post(`${AUTH}/register`, fields, false);
    return this.signIn(fields.email, fields.password);
  }

  /** Signs in with an OpenID Connect ID token (and the nonce the sign-in request carried). */
  async signInWithIdToken(idToken, nonce) {
    this.adopt(await this.post(`${AUTH}/oidc`, { id_token: idToken, nonce }, false));
    return this.user;
  }

  /** Resumes from the stored refresh token: false when there is none, rejects when the server refuses it. */
  async restore() {
    if (!this.refreshToken) return false;
    await this.refresh();
    return true;
  }

  /** A new access token from the refresh token; concurrent callers share one request (tokens are single-use). */
  refresh() {
    this.refreshing ??= (async () => {
      try {
        if (!this.refreshToken) throw new SkinDocError(401, 'signed_out', 'Please sign in.');
        this.adopt(await this.post(`${AUTH}/refresh`, { refresh_token: this.refreshToken }, false));
      } catch (error) {
        if (!error.retryable) this.forget();  // refused for good (revoked, expired): signed out
        throw error;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  async signOut() {
    const refreshToken = this.refreshToken;
    if (this.signedIn && refreshToken) await this.post(`${AUTH}/logout`, { refresh_token: refreshToken }).catch(() => {});
    this.forget();
  }

  /** Drops the tokens here (the server's copy expires by itself) and tells the listeners. */
  forget() {
    clearTimeout(this.renewal);
    this.accessToken = null;
    this.user = null;
    this.storage.removeItem(this.storageKey);
    for (const listener of this.listeners.signedOut) listener(this);
  }

  adopt(tokens) {
    this.accessToken = tokens.access_token;
    this.storage.setItem(this.storageKey, tokens.refresh_token);
    if (tokens.user) this.user = tokens.user;
    clearTimeout(this.renewal);
    this.renewal = setTimeout(() => this.refresh().catch(() => {}), renewAfterMs(tokens.expires_in));
    if (this.renewal.unref) this.renewal.unref();  // Node: a pending renewal does not keep the process alive
    for (const listener of this.listeners.tokens) listener(this);
  }

  /** The signed-in user as the server has it now (`GET /api/v1/me`). */
  async loadUser() {
    ({ user: this.user } = await this.get('/api/v1/me'));
    return this.user;
  }

  get(path) { return this.request('GET', path); }
  post(path, body, authenticated = true) { return this.request('POST', path, body, authenticated); }

  /** A JSON call: the answer's body (null for 204), or a SkinDocError. */
  async request(method, path, body, authenticated = true) {
    const response = await this.send(method, path, body, authenticated);
    return response.status === 204 ? null : response.json();
  }

  /** A protected file (a photo) as a Blob: an <img> or <Image> cannot send the Authorization header itself. */
  async blob(path) {
    return (await this.send('GET', path)).blob();
  }

  /** The response of a call that succeeded; on a 401 the access token is renewed once and the call repeated. */
  async send(method, path, body, authenticated = true) {
    let response = await this.attempt(method, path, body, authenticated);
    if (response.status === 401 && authenticated && this.refreshToken) {
      await this.refresh();
      response = await this.attempt(method, path, body, authenticated);
    }
    if (response.ok) return response;
    if (response.status === 401 && authenticated) this.forget();
    throw SkinDocError.fromProblem(response.status, await response.json().catch(() => null));
  }

  async attempt(method, path, body, authenticated) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (authenticated && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    try {
      return await this.fetch(`${this.baseUrl}${path}`,
        { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw networkError();
    }
  }
}
