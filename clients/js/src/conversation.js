// One consultation's messages, as docs/asyncapi.yaml's reader algorithm says: ordered by seq, each shown once,
// gaps filled from the server, and unacknowledged sends resent with the same client id until stored.

import { SkinDocError } from './errors.js';

const GAP_WAIT_MS = 1000;

/** Message length as the server counts it: Unicode code points (not UTF-16 units, JavaScript's `.length`). */
export const codePoints = (text) => [...text].length;

let counter = 0;
const newClientMsgId = () => `c-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

export class Conversation {
  /**
   * @param {object} options realtime, consultationId, onMessage(message) — called once per seq, in order,
   *   onTyping({user_id, typing}), onRead({user_id, read_seq}), maxChars (default 2000), gapWaitMs.
   */
  constructor({ realtime, consultationId, onMessage = () => {}, onTyping = () => {}, onRead = () => {},
    maxChars = 2000, gapWaitMs = GAP_WAIT_MS }) {
    Object.assign(this, { realtime, consultationId, onMessage, maxChars, gapWaitMs });
    this.last = 0;                // highest seq held with nothing missing below it
    this.early = new Map();       // seq → message that arrived ahead of a gap
    this.pending = new Map();     // client_msg_id → { body, resolve, reject }
    this.gapTimer = null;
    this.syncing = Promise.resolve();
    const mine = (event) => event.consultation_id === consultationId;
    this.unsubscribe = [
      realtime.on('message', (message) => { if (mine(message)) this.receive([message]); }),
      realtime.on('typing', (event) => { if (mine(event)) onTyping(event); }),
      realtime.on('read', (event) => { if (mine(event)) onRead(event); }),
    ];
    this.stopResync = realtime.onResync(() => this.resync());
  }

  /** Stops listening and leaves the room (so keep one Conversation per consultation per connection). */
  close() {
    for (const off of this.unsubscribe) off();
    this.stopResync();
    clearTimeout(this.gapTimer);
    if (this.realtime.connected) this.realtime.call('consultation:leave', { consultation_id: this.consultationId }).catch(() => {});
  }

  /** Everything after `last`, page by page, then the unacknowledged sends; serialised so two never interleave. */
  resync() {
    this.syncing = this.syncing.then(async () => {
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

  /** Sends a message; resolves with it once stored (after reconnections if need be, with the same client id). */
  send(body) {
    if (!body.trim() || codePoints(body) > this.maxChars) {
      return Promise.reject(new SkinDocError(422, 'invalid_field', `A message is 1 to ${this.maxChars} characters.`, 'body'));
    }
    const clientMsgId = newClientMsgId();
    const sent = new Promise((resolve, reject) => this.pending.set(clientMsgId, { body, resolve, reject }));
    sent.clientMsgId = clientMsgId;
    this.deliver(clientMsgId);
    return sent;
  }

  async deliver(clientMsgId) {
    const pending = this.pending.get(clientMsgId);
    if (!pending || !this.realtime.connected) return;  // resent by the next resync
    try {
      const { message } = await this.realtime.call('message:send',
        { consultation_id: this.consultationId, client_msg_id: clientMsgId, body: pending.body });
      this.pending.delete(clientMsgId);
      this.receive([message]);  // your own messages come in the ack, never as a push to this socket
      pending.resolve(message);
    } catch (error) {
      if (error.retryable) return;  // still pending: resent after the next reconnection
      this.pending.delete(clientMsgId);
      pending.reject(error);
    }
  }

  typing(isTyping) {
    return this.realtime.call('typing', { consultation_id: this.consultationId, typing: isTyping });
  }

  /** Marks everything up to `seq` (default: all shown) as read; the other side gets a `read` push. */
  markRead(seq = this.last) {
    return this.realtime.call('read', { consultation_id: this.consultationId, seq });
  }
}
