// The HTTP API client: the signed-in session (access and refresh tokens), JSON calls, problem documents as errors.

const AUTH = '/api/v1/auth';

/** A failed call, from the server's problem document (RFC 9457) or from the network. */
export class ApiError extends Error {
  constructor(status, code, message, field = null, extra = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.extra = extra;
  }

  get retryable() { return this.status === 0 || this.status >= 500 || this.status === 429; }
}

async function errorFromResponse(response) {
  try {
    const problem = await response.json();
    return new ApiError(response.status, problem.code || 'http_error', problem.detail || response.statusText,
      problem.field || null, problem);
  } catch {
    return new ApiError(response.status, 'http_error', `The server answered ${response.status}.`);
  }
}

export const networkError = () => new ApiError(0, 'network', 'No connection to SkinDoc. Check your network and try again.');

/**
 * One signed-in user per browser tab. The refresh token lives in sessionStorage, so a reload keeps
 * the session, closing the tab ends it, and a patient and a doctor can use two windows of one browser.
 */
export class Session extends EventTarget {
  constructor(app) {
    super();
    this.storageKey = `skindoc.${app}.refresh`;
    this.accessToken = null;
    this.user = null;
    this.refreshing = null;
    this.refreshTimer = null;
  }

  get signedIn() { return this.accessToken !== null; }

  async restore() {
    if (!sessionStorage.getItem(this.storageKey)) return false;
    try {
      await this.refresh();
      return true;
    } catch (error) {
      if (!error.retryable) this.forget();
      throw error;
    }
  }

  async signIn(email, password) {
    this.adopt(await this.post(`${AUTH}/login`, { email, password }, false));
  }

  async signUp(fields) {
    await this.post(`${AUTH}/register`, fields, false);
    await this.signIn(fields.email, fields.password);
  }

  async signOut() {
    const refreshToken = sessionStorage.getItem(this.storageKey);
    try {
      if (refreshToken) await this.post(`${AUTH}/logout`, { refresh_token: refreshToken }, false);
    } catch { /* signed out here whatever the server says: the token expires anyway */ }
    this.forget();
  }

  /** New tokens from the refresh token; concurrent callers share one request (a refresh token is single-use). */
  refresh() {
    this.refreshing ??= (async () => {
      try {
        const refreshToken = sessionStorage.getItem(this.storageKey);
        if (!refreshToken) throw new ApiError(401, 'signed_out', 'Please sign in.');
        this.adopt(await this.post(`${AUTH}/refresh`, { refresh_token: refreshToken }, false));
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  adopt(tokens) {
    this.accessToken = tokens.access_token;
    sessionStorage.setItem(this.storageKey, tokens.refresh_token);
    if (tokens.user) this.user = tokens.user;
    clearTimeout(this.refreshTimer);
    // Renew a minute early (or half-way through a short lifetime) so no request, and no open socket, meets an
    // expired token: the expiry is in whole seconds and a slow network needs time for the renewal itself.
    const lifetime = (tokens.expires_in || 900) * 1000;
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), Math.max(lifetime / 2, lifetime - 60000));
    this.dispatchEvent(new Event('tokens'));
  }

  forget() {
    clearTimeout(this.refreshTimer);
    this.accessToken = null;
    this.user = null;
    sessionStorage.removeItem(this.storageKey);
    this.dispatchEvent(new Event('signedout'));
  }

  async loadUser() {
    ({ user: this.user } = await this.get('/api/v1/me'));
    return this.user;
  }

  async signInWithIdToken(idToken, nonce) {
    this.adopt(await this.post(`${AUTH}/oidc`, { id_token: idToken, nonce }, false));
  }

  get(path) { return this.request('GET', path); }
  post(path, body, authenticated = true) { return this.request('POST', path, body, authenticated); }

  /** A JSON call; on 401 the tokens are refreshed once and the call repeated. */
  async request(method, path, body, authenticated = true) {
    const send = () => {
      const headers = { Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (authenticated && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
      return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    };
    let response;
    try {
      response = await send();
      if (response.status === 401 && authenticated && sessionStorage.getItem(this.storageKey)) {
        await this.refresh();
        response = await send();
      }
    } catch (error) {
      throw error instanceof ApiError ? error : networkError();
    }
    if (response.status === 401 && authenticated) this.forget();
    if (!response.ok) throw await errorFromResponse(response);
    return response.status === 204 ? null : response.json();
  }

  /** A protected image as an object URL (an <img> cannot send the Authorization header itself). */
  async imageUrl(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${this.accessToken}` } });
    if (!response.ok) throw await errorFromResponse(response);
    return URL.createObjectURL(await response.blob());
  }
}
