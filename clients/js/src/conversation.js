// One consultation's messages, as docs/asyncapi.yaml's reader algorithm says: ordered by seq, each shown once,
// gaps filled from the server, and unacknowledged sends resent with the same client id until stored.

import { SkinDocError } from './errors.js';

const GAP_WAIT_MS = 1000;
const TYPING_IDLE_MS = 3000;
// The server's default (SKINDOC_CHAT_MAX_MESSAGE_CHARS); `messageLimit(session)` reads a deployment's own.
export const DEFAULT_MAX_CHARS = 2000;

/** Message length as the server counts it: Unicode code points (not UTF-16 units, JavaScript's `.length`). */
export const codePoints = (text) => [...text].length;

/** The server's longest message, in code points, from its AsyncAPI document (`GET /api/v1/asyncapi.json`). */
export async function messageLimit(session) {
  const contract = await session.get('/api/v1/asyncapi.json');
  return contract.components.schemas.MessageBody.maxLength;
}

// Leaves still unanswered, per connection and consultation: a new Conversation of that case joins only after
// them, because the server handles one connection's events concurrently and a late leave would take the
// connection out of the room the join just put it in.
const leaving = new WeakMap();  // realtime → Map(consultationId → Promise)

let counter = 0;
const newClientMsgId = () => `c-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

export class Conversation {
  /**
   * @param {object} options realtime, consultationId, onMessage(message) — called once per seq, in order,
   *   your own messages included; onTyping({user_id, typing}), onRead({user_id, read_seq}); maxChars (in code
   *   points, default 2000: pass `await messageLimit(session)`), gapWaitMs, typingIdleMs; storage (a Web
   *   Storage such as sessionStorage: unsent messages are kept there, so they survive a reload of the app and
   *   go out with their first client ids).
   */
  constructor({ realtime, consultationId, onMessage = () => {}, onTyping = () => {}, onRead = () => {},
    maxChars = DEFAULT_MAX_CHARS, gapWaitMs = GAP_WAIT_MS, typingIdleMs = TYPING_IDLE_MS, storage = null }) {
    Object.assign(this, { realtime, consultationId, onMessage, maxChars, gapWaitMs, typingIdleMs, storage });
    this.last = 0;                // highest seq held with nothing missing below it
    this.early = new Map();       // seq → message that arrived ahead of a gap
    this.pending = new Map();     // client_msg_id → { body, sent, resolve, reject }
    this.storageKey = `skindoc.unsent.${consultationId}`;
    this.gapTimer = null;
    this.typingTimer = null;
    this.syncing = Promise.resolve();
    this.restoreUnsent();
    const mine = (event) => event.consultation_id === consultationId;
    this.unsubscribe = [
      realtime.on('message', (message) => { if (mine(message)) this.receive([message]); }),
      realtime.on('typing', (event) => { if (mine(event)) onTyping(event); }),
      realtime.on('read', (event) => { if (mine(event)) onRead(event); }),
    ];
    this.stopResync = realtime.onResync(() => this.resync());
  }

  /**
   * Stops listening and leaves the room (so keep one Conversation per consultation per connection); resolves
   * once left. Unsent messages stay in storage for the next Conversation of this consultation.
   */
  close() {
    this.stopTyping();
    for (const off of this.unsubscribe) off();
    this.stopResync();
    clearTimeout(this.gapTimer);
    if (!this.realtime.connected) return Promise.resolve();
    if (!leaving.has(this.realtime)) leaving.set(this.realtime, new Map());
    const leaves = leaving.get(this.realtime);
    const left = Promise.all([leaves.get(this.consultationId),
      this.realtime.call('consultation:leave', { consultation_id: this.consultationId }).catch(() => {})]);
    leaves.set(this.consultationId, left);
    left.then(() => { if (leaves.get(this.consultationId) === left) leaves.delete(this.consultationId); });
    return left.then(() => {});
  }

  /** Everything after `last`, page by page, then the unacknowledged sends; serialised so two never interleave. */
  resync() {
    this.syncing = this.syncing.then(async () => {
      await leaving.get(this.realtime)?.get(this.consultationId);
      let reply = await this.realtime.call('consultation:join', { consultation_id: this.consultationId, after_seq: this.last });
      this.consultation = reply.consultation;
      this.receive(reply.messages);
      while (reply.has_more) {
        reply = await this.realtime.call('message:sync', { consultation_id: this.consultationId, after_seq: this.last });
        this.receive(reply.messages);
      }
      for (const clientMsgId of [...this.pending.keys()]) await this.deliver(clientMsgId);
    }).catch(() => { /* the next (re)connection tries again */ });
    return this.syncing;
  }

  /** Pushes, acks and sync pages all come through here: duplicates dropped, order by seq, gaps fetched. */
  receive(messages) {
    for (const message of messages) {
      if (message.seq > this.last) this.early.set(message.seq, message);
    }
    while (this.early.has(this.last + 1)) {
      const message = this.early.get(this.last + 1);
      this.early.delete(this.last + 1);
      this.last = message.seq;
      this.onMessage(message);
    }
    clearTimeout(this.gapTimer);
    if (this.early.size) {
      // The missing one is usually just behind (pushed after its own commit, maybe by another node).
      this.gapTimer = setTimeout(() => this.fillGap(), this.gapWaitMs);
    }
  }

  async fillGap() {
    this.syncing = this.syncing.then(async () => {
      const reply = await this.realtime.call('message:sync', { consultation_id: this.consultationId, after_seq: this.last });
      this.receive(reply.messages);
    }).catch(() => {});
    return this.syncing;
  }

  /**
   * Sends a message; resolves with it once stored (after reconnections if need be, with the same client id).
   * The promise carries `clientMsgId`, which the stored message (handed to onMessage too) carries as well.
   */
  send(body) {
    if (!body.trim() || codePoints(body) > this.maxChars) {
      return Promise.reject(new SkinDocError(422, 'invalid_field', `A message is 1 to ${this.maxChars} characters.`, 'body'));
    }
    const clientMsgId = newClientMsgId();
    const sent = this.track(clientMsgId, body);
    this.deliver(clientMsgId);
    return sent;
  }

  /** The sends not stored yet, those restored from storage included: [{clientMsgId, body, sent}]. */
  get unsent() {
    return [...this.pending].map(([clientMsgId, { body, sent }]) => ({ clientMsgId, body, sent }));
  }

  track(clientMsgId, body) {
    const entry = { body };
    entry.sent = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
    entry.sent.clientMsgId = clientMsgId;
    this.pending.set(clientMsgId, entry);
    this.saveUnsent();
    return entry.sent;
  }

  settle(clientMsgId) {
    this.pending.delete(clientMsgId);
    this.saveUnsent();
  }

  saveUnsent() {
    if (!this.storage) return;
    const unsent = [...this.pending].map(([clientMsgId, { body }]) => [clientMsgId, body]);
    if (unsent.length) this.storage.setItem(this.storageKey, JSON.stringify(unsent));
    else this.storage.removeItem(this.storageKey);
  }

  /** Unsent messages from before a reload: delivered by the first resync (a failure is for `unsent` to show). */
  restoreUnsent() {
    if (!this.storage) return;
    let unsent = [];
    try { unsent = JSON.parse(this.storage.getItem(this.storageKey)) || []; } catch { /* unreadable: nothing to resend */ }
    for (const [clientMsgId, body] of unsent) this.track(clientMsgId, body).catch(() => {});
  }

  async deliver(clientMsgId) {
    const pending = this.pending.get(clientMsgId);
    if (!pending || !this.realtime.connected) return;  // resent by the next resync
    try {
      const { message } = await this.realtime.call('message:send',
        { consultation_id: this.consultationId, client_msg_id: clientMsgId, body: pending.body });
      this.settle(clientMsgId);
      this.receive([message]);  // your own messages come in the ack, never as a push to this socket
      pending.resolve(message);
    } catch (error) {
      if (error.retryable) return;  // still pending: resent after the next reconnection
      this.settle(clientMsgId);
      pending.reject(error);
    }
  }

  typing(isTyping) {
    return this.realtime.call('typing', { consultation_id: this.consultationId, typing: isTyping });
  }

  /** Call on every keystroke: the other side hears "typing" once, and "stopped" after typingIdleMs of quiet. */
  typed() {
    if (!this.typingTimer) this.typing(true).catch(() => {});
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), this.typingIdleMs);
  }

  /** Says "stopped typing" now (on sending, say), if "typing" was said. */
  stopTyping() {
    if (!this.typingTimer) return;
    clearTimeout(this.typingTimer);
    this.typingTimer = null;
    if (this.realtime.connected) this.typing(false).catch(() => {});
  }

  /** Marks everything up to `seq` (default: all shown) as read; the other side gets a `read` push. */
  markRead(seq = this.last) {
    return this.realtime.call('read', { consultation_id: this.consultationId, seq });
  }
}
