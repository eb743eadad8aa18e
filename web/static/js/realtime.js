// The Socket.IO connection: authenticated with the session's access token, a "reconnecting…" banner while it is
// down, and a resync of every view that registered one each time it comes back.

import { io } from '/static/vendor/socket.io.esm.min.js';
import { ApiError } from './api.js';

const ACK_TIMEOUT_MS = 10000;
const AUTH_ERROR_CODES = new Set(['token_missing', 'token_invalid', 'token_expired']);

export class Realtime {
  constructor(session, banner) {
    this.session = session;
    this.banner = banner;
    this.resyncs = new Set();
    this.everConnected = false;
    this.socket = io({
      autoConnect: false,
      // Websocket first: on slow mobile data each polling round trip costs seconds.
      transports: ['websocket', 'polling'],
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      // A function, so every reconnection presents the current token, not the one from page load.
      auth: (send) => send({ token: this.session.accessToken }),
    });
    this.socket.on('connect', () => this.connected());
    this.socket.on('disconnect', (reason) => this.disconnected(reason));
    this.socket.on('connect_error', (error) => this.refused(error));
    // Renewed tokens go to the open connection too, so the server never has to cut it for expiry.
    session.addEventListener('tokens', () => {
      if (this.socket.connected) this.call('session:refresh', { token: session.accessToken }).catch(() => {});
    });
  }

  start() { this.socket.connect(); }

  stop() {
    this.socket.disconnect();
    this.showBanner(false);
  }

  on(event, handler) { this.socket.on(event, handler); }

  /** Registers work to redo after every (re)connection: rejoin rooms, fetch what was missed. */
  onResync(handler) {
    this.resyncs.add(handler);
    if (this.socket.connected) handler();
    return () => this.resyncs.delete(handler);
  }

  /** Emits and waits for the ack; an error ack or no ack in time rejects with an ApiError. */
  async call(event, payload) {
    let reply;
    try {
      reply = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
    } catch {
      throw new ApiError(0, 'no_ack', 'No answer from SkinDoc yet; it will be retried when the connection is back.');
    }
    if (reply && reply.error) {
      const error = reply.error;
      throw new ApiError(error.status || 400, error.code || 'error', error.detail || error.message || 'Refused.',
        error.field || null, error);
    }
    return reply;
  }

  connected() {
    this.everConnected = true;
    this.showBanner(false);
    for (const resync of this.resyncs) resync();
  }

  disconnected(reason) {
    if (reason === 'io client disconnect') return;
    this.showBanner(true);
    // The server ends a connection whose token expired; come back with a fresh one.
    if (reason === 'io server disconnect') this.reauthenticate();
  }

  refused(error) {
    if (this.everConnected) this.showBanner(true);
    const code = error.data && error.data.code;
    // A refusal by the server is final for socket.io-client; a network failure retries by itself.
    if (!this.socket.active && code !== 'account_pending') this.reauthenticate(AUTH_ERROR_CODES.has(code));
  }

  async reauthenticate(needsNewToken = true) {
    try {
      if (needsNewToken) await this.session.refresh();
      setTimeout(() => this.socket.connect(), 500);
    } catch (error) {
      if (error.retryable) setTimeout(() => this.reauthenticate(needsNewToken), 3000);
    }
  }

  showBanner(visible) { this.banner.hidden = !visible; }
}
