// The Socket.IO connection: authenticated with the session's current token, kept alive across token renewals,
// and every call answered by its ack or a typed error (docs/asyncapi.yaml).

import { SkinDocError, noAnswer } from './errors.js';

const ACK_TIMEOUT_MS = 10000;
// The server closes a websocket whose frame is larger (close code 1009): refuse such a call here instead.
export const MAX_FRAME_BYTES = 64 * 1024;
const REFUSALS_NEEDING_A_NEW_TOKEN = new Set(['token_missing', 'token_invalid', 'token_expired']);

export class Realtime {
  /**
   * @param {object} options session (a Session), io (socket.io-client's `io`), url (the server's origin;
   *   omitted in a page served by it), transports (default websocket, then polling).
   */
  constructor({ session, io, url, transports = ['websocket', 'polling'] }) {
    this.session = session;
    this.resyncs = new Set();
    this.statusListeners = new Set();
    this.everConnected = false;
    const options = {
      autoConnect: false,
      transports,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      // A function, so every reconnection presents the current token, not the first one.
      auth: (send) => send({ token: session.accessToken }),
    };
    this.socket = url ? io(url, options) : io(options);
    this.socket.on('connect', () => this.wentOnline());
    this.socket.on('connect_error', (error) => this.refused(error));
    this.socket.on('disconnect', (reason) => this.wentOffline(reason));
    // A renewed token goes to the open connection too, so the server never has to cut it.
    this.stopTokens = session.onTokens(() => {
      if (this.socket.connected) this.call('session:refresh', { token: session.accessToken }).catch(() => {});
    });
  }

  /** Connects; resolves once connected (and the resync handlers have started). */
  connect() {
    return new Promise((resolve, reject) => {
      const done = () => { this.socket.off('connect', done); this.socket.off('connect_error', failed); resolve(); };
      const failed = (error) => {
        if (this.socket.active) return;  // a network failure: socket.io-client retries by itself
        this.socket.off('connect', done);
        this.socket.off('connect_error', failed);
        reject(new SkinDocError(401, (error.data && error.data.code) || 'connect_error', error.message));
      };
      this.socket.on('connect', done);
      this.socket.on('connect_error', failed);
      this.socket.connect();
    });
  }

  /** Closes the connection (on signing out, say); `connect()` opens it again, with the then current token. */
  disconnect() {
    this.socket.disconnect();
  }

  /** Closes the connection for good and stops following the session's tokens. */
  close() {
    this.stopTokens();
    this.socket.disconnect();
  }

  get connected() { return this.socket.connected; }

  /**
   * `listener(status)` on every change: 'online'; 'offline' when the connection dropped or a reconnection
   * failed (socket.io-client keeps trying: show a "reconnecting" note); 'closed' after `disconnect()`.
   */
  onStatus(listener) {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  setStatus(status) {
    for (const listener of this.statusListeners) listener(status);
  }

  wentOnline() {
    this.everConnected = true;
    this.setStatus('online');
    for (const resync of this.resyncs) resync();
  }

  wentOffline(reason) {
    this.setStatus(reason === 'io client disconnect' ? 'closed' : 'offline');
    // The server cuts a connection whose token expired ("io server disconnect"); come back with a new one.
    if (reason === 'io server disconnect') this.reauthenticate();
  }

  on(event, handler) { this.socket.on(event, handler); return () => this.socket.off(event, handler); }

  /** Work to redo after every (re)connection (rejoin, fetch what was missed); runs now if connected. */
  onResync(handler) {
    this.resyncs.add(handler);
    if (this.socket.connected) handler();
    return () => this.resyncs.delete(handler);
  }

  /** Emits and waits for the ack: the result, or a SkinDocError (the server's, frame_too_large, no_ack). */
  async call(event, payload = {}, { timeoutMs = ACK_TIMEOUT_MS } = {}) {
    const frameBytes = new TextEncoder().encode(JSON.stringify([event, payload])).length + 16;
    if (frameBytes > MAX_FRAME_BYTES) {
      throw new SkinDocError(413, 'frame_too_large', `The event is ${frameBytes} bytes; the limit is ${MAX_FRAME_BYTES}.`);
    }
    let reply;
    try {
      reply = await this.socket.timeout(timeoutMs).emitWithAck(event, payload);
    } catch {
      throw noAnswer();
    }
    if (!reply.ok) throw SkinDocError.fromAck(reply.error);
    const { ok, ...result } = reply;
    return result;
  }

  refused(error) {
    if (this.everConnected) this.setStatus('offline');
    const code = error.data && error.data.code;
    // A refusal by the server is final for socket.io-client; a network failure retries by itself.
    if (!this.socket.active && code !== 'account_pending') this.reauthenticate(REFUSALS_NEEDING_A_NEW_TOKEN.has(code));
  }

  async reauthenticate(needsNewToken = true) {
    try {
      if (needsNewToken) await this.session.refresh();
      setTimeout(() => { if (this.session.signedIn) this.socket.connect(); }, 500);
    } catch (error) {
      if (error.retryable) setTimeout(() => this.reauthenticate(needsNewToken), 3000);
    }
  }
}
