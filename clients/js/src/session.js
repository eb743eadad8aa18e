// Sign-in and token renewal over the HTTP API: the access token is renewed before it runs out.

import { SkinDocError } from './errors.js';

const AUTH = '/api/v1/auth';
// Renew when this share of the access token's life has passed.
const RENEW_AT = 0.8;

export class Session {
  /**
   * @param {object} options baseUrl ("https://skindoc.example"), fetch (defaults to the global one),
   *   refreshToken (a stored one, to resume without a password).
   */
  constructor({ baseUrl, fetch = globalThis.fetch, refreshToken = null }) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.fetch = fetch;
    this.accessToken = null;
    this.refreshToken = refreshToken;
    this.user = null;
    this.listeners = new Set();
    this.renewal = null;
    this.refreshing = null;
  }

  /** `listener(session)` after every sign-in and renewal (store `session.refreshToken` if you keep it). */
  onTokens(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async signIn(email, password) {
    this.adopt(await this.post(`${AUTH}/login`, { email, password }, false));
    return this.user;
  }

  /** A new access token from the refresh token; concurrent callers share one request (tokens are single-use). */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.post(`${AUTH}/refresh`, { refresh_token: this.refreshToken }, false)
        .then((tokens) => this.adopt(tokens))
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  async signOut() {
    clearTimeout(this.renewal);
    const refreshToken = this.refreshToken;
    if (this.accessToken && refreshToken) await this.post(`${AUTH}/logout`, { refresh_token: refreshToken }).catch(() => {});
    this.accessToken = this.refreshToken = this.user = null;
  }

  adopt(tokens) {
    this.accessToken = tokens.access_token;
    this.refreshToken = tokens.refresh_token;
    this.user = tokens.user;
    clearTimeout(this.renewal);
    this.renewal = setTimeout(() => this.refresh().catch(() => {}), tokens.expires_in * RENEW_AT * 1000);
    if (this.renewal.unref) this.renewal.unref();  // Node: a pending renewal does not keep the process alive
    for (const listener of this.listeners) listener(this);
  }

  get(path) { return this.request('GET', path); }
  post(path, body, authenticated = true) { return this.request('POST', path, body, authenticated); }

  /** A JSON call; an expired access token is renewed once and the call repeated. */
  async request(method, path, body, authenticated = true, retried = false) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (authenticated) headers.Authorization = `Bearer ${this.accessToken}`;
    let response;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`,
        { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new SkinDocError(0, 'network', 'No connection to the server.');
    }
    if (response.status === 204) return null;
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return answer;
    if (response.status === 401 && authenticated && !retried && this.refreshToken) {
      await this.refresh();
      return this.request(method, path, body, authenticated, true);
    }
    throw new SkinDocError(response.status, answer.code || 'http_error', answer.detail || `HTTP ${response.status}`,
      answer.field || null);
  }
}
