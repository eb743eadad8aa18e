// One consultation's chat: bubbles in sequence order, sending → delivered → read ticks, typing, and a resync
// after every reconnection so nothing acknowledged is missing and nothing shows twice.

import { h, fill } from './dom.js';
import { clock } from './words.js';

const TYPING_IDLE_MS = 3000;
const TYPING_SHOWN_MS = 6000;
const TICKS = {
  sending: ['◷', 'Sending…'],
  delivered: ['✓', 'Delivered'],
  read: ['✓✓', 'Read'],
  failed: ['!', 'Not sent'],
};

export class ChatView {
  /**
   * @param {object} options realtime, session, consultationId, container, otherLabel ("the doctor"),
   *   writable (false shows the history only), readOnlyNote (why it is read-only).
   */
  constructor({ realtime, session, consultationId, container, otherLabel, writable, readOnlyNote }) {
    this.realtime = realtime;
    this.session = session;
    this.consultationId = consultationId;
    this.otherLabel = otherLabel;
    this.lastSeq = 0;
    this.theirReadSeq = 0;
    this.sentReadSeq = 0;
    this.pending = new Map();  // client_msg_id → { body, node }
    this.syncing = Promise.resolve();
    this.typingTimer = null;
    this.typingShownTimer = null;
    this.storageKey = `skindoc.unsent.${consultationId}`;
    this.build(container, writable, readOnlyNote);
    this.restorePending();
    this.listeners = {
      message: (message) => { if (this.mine(message)) this.receive([message]); },
      typing: (event) => { if (this.mine(event) && event.user_id !== this.ownId()) this.showTyping(event.typing); },
      read: (event) => { if (this.mine(event) && event.user_id !== this.ownId()) this.markRead(event.read_seq); },
    };
    for (const [event, handler] of Object.entries(this.listeners)) realtime.on(event, handler);
    this.stopResync = realtime.onResync(() => this.resync());
    this.onVisible = () => this.sendReadReceipt();
    document.addEventListener('visibilitychange', this.onVisible);
  }

  destroy() {
    for (const [event, handler] of Object.entries(this.listeners)) this.realtime.socket.off(event, handler);
    this.stopResync();
    document.removeEventListener('visibilitychange', this.onVisible);
  }

  build(container, writable, readOnlyNote) {
    this.list = h('ol', { class: 'messages', 'aria-live': 'polite', 'aria-label': 'Messages' });
    this.typing = h('div', { class: 'typing', 'aria-live': 'polite' });
    this.input = h('textarea', { name: 'body', rows: 1, maxlength: 2000, 'aria-label': 'Message', placeholder: 'Write a message' });
    this.input.addEventListener('input', () => this.typed());
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) { event.preventDefault(); this.form.requestSubmit(); }
    });
    this.form = h('form', { class: 'composer', onsubmit: (event) => { event.preventDefault(); this.submit(); } },
      this.input, h('button', { class: 'primary', type: 'submit' }, 'Send'));
    this.form.hidden = !writable;
    this.note = h('p', { class: 'muted small' }, writable ? '' : (readOnlyNote || ''));
    fill(container, h('div', { class: 'chat' }, this.list, this.typing, this.form, this.note));
  }

  setWritable(writable, note = '') {
    this.form.hidden = !writable;
    fill(this.note, writable ? '' : note);
  }

  ownId() { return this.session.user && this.session.user.id; }
  mine(event) { return event.consultation_id === this.consultationId; }

  /** Everything after the last message shown, page by page; serialised so two resyncs never interleave. */
  resync() {
    this.syncing = this.syncing.then(async () => {
      let reply = await this.realtime.call('consultation:join',
        { consultation_id: this.consultationId, after_seq: this.lastSeq });
      this.receive(reply.messages);
      while (reply.has_more) {
        reply = await this.realtime.call('message:sync', { consultation_id: this.consultationId, after_seq: this.lastSeq });
        this.receive(reply.messages);
      }
      await this.resendPending();
    }).catch(() => { /* the next reconnection tries again */ });
    return this.syncing;
  }

  /** Shows messages in order: anything at or below the last shown seq is a duplicate; a gap triggers a resync. */
  receive(messages) {
    let gap = false;
    for (const message of [...messages].sort((a, b) => a.seq - b.seq)) {
      if (message.seq <= this.lastSeq) continue;
      if (message.seq > this.lastSeq + 1) { gap = true; break; }
      this.show(message);
      this.lastSeq = message.seq;
    }
    if (gap) this.resync();
    this.sendReadReceipt();
  }

  show(message) {
    const own = message.sender_id === this.ownId();
    const pending = own ? this.pending.get(message.client_msg_id) : null;
    const node = pending ? pending.node : this.bubble(message.body, own);
    if (pending) {
      this.pending.delete(message.client_msg_id);
      this.savePending();
    }
    node.dataset.seq = String(message.seq);
    node.querySelector('.time').textContent = clock(message.sent_at);
    if (own) this.setTick(node, message.seq <= this.theirReadSeq ? 'read' : 'delivered');
    this.list.append(node);  // (re)appended in seq order, after any earlier messages that arrived meanwhile
    this.list.scrollTop = this.list.scrollHeight;
  }

  bubble(body, own) {
    const meta = h('span', { class: 'meta' }, h('span', { class: 'time' }), own ? h('span', { class: 'tick' }) : null);
    return h('li', { class: own ? 'bubble own' : 'bubble' }, h('span', { class: 'body' }, body), meta);
  }

  setTick(node, state) {
    const tick = node.querySelector('.tick');
    if (!tick) return;
    const [symbol, words] = TICKS[state];
    tick.textContent = symbol;
    tick.setAttribute('title', words);
    tick.setAttribute('aria-label', words);
    node.dataset.state = state;
    node.classList.toggle('failed', state === 'failed');
  }

  submit() {
    const body = this.input.value.trim();
    if (!body) return;
    this.input.value = '';
    this.stopTyping();
    const clientMsgId = `c-${crypto.randomUUID()}`;
    this.addPending(clientMsgId, body);
    this.savePending();
    this.deliver(clientMsgId);
  }

  addPending(clientMsgId, body) {
    const node = this.bubble(body, true);
    this.setTick(node, 'sending');
    node.querySelector('.time').textContent = 'now';
    this.pending.set(clientMsgId, { body, node });
    this.list.append(node);
    this.list.scrollTop = this.list.scrollHeight;
  }

  /**
   * Unsent messages survive a reload of the tab (a patient on flaky data may well reload): they go out with the
   * same client ids, so one that did reach the server before is not stored twice.
   */
  savePending() {
    const unsent = [...this.pending].map(([clientMsgId, { body }]) => [clientMsgId, body]);
    if (unsent.length) sessionStorage.setItem(this.storageKey, JSON.stringify(unsent));
    else sessionStorage.removeItem(this.storageKey);
  }

  restorePending() {
    let unsent = [];
    try { unsent = JSON.parse(sessionStorage.getItem(this.storageKey)) || []; } catch { /* unreadable: nothing to resend */ }
    for (const [clientMsgId, body] of unsent) this.addPending(clientMsgId, body);
  }

  /** Sends one pending message; the same client id on a retry makes the server store it once. */
  async deliver(clientMsgId) {
    const pending = this.pending.get(clientMsgId);
    if (!pending || !this.realtime.socket.connected) return;  // resent after the next resync
    try {
      const reply = await this.realtime.call('message:send',
        { consultation_id: this.consultationId, client_msg_id: clientMsgId, body: pending.body });
      this.receive([reply.message]);
    } catch (error) {
      if (error.retryable || error.code === 'no_ack') return;  // still pending: retried on reconnection
      this.pending.delete(clientMsgId);
      this.savePending();
      this.setTick(pending.node, 'failed');
      pending.node.append(h('span', { class: 'meta' }, error.message));
    }
  }

  async resendPending() {
    for (const clientMsgId of [...this.pending.keys()]) await this.deliver(clientMsgId);
  }

  markRead(seq) {
    this.theirReadSeq = Math.max(this.theirReadSeq, seq);
    for (const node of this.list.querySelectorAll('.bubble.own[data-seq]')) {
      if (Number(node.dataset.seq) <= this.theirReadSeq) this.setTick(node, 'read');
    }
  }

  sendReadReceipt() {
    if (document.visibilityState !== 'visible' || this.list.offsetParent === null) return;
    if (this.lastSeq <= this.sentReadSeq || !this.realtime.socket.connected) return;
    this.sentReadSeq = this.lastSeq;
    this.realtime.call('read', { consultation_id: this.consultationId, seq: this.lastSeq }).catch(() => {
      this.sentReadSeq = 0;
    });
  }

  typed() {
    if (!this.typingTimer) this.realtime.call('typing', { consultation_id: this.consultationId, typing: true }).catch(() => {});
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    if (!this.typingTimer) return;
    clearTimeout(this.typingTimer);
    this.typingTimer = null;
    this.realtime.call('typing', { consultation_id: this.consultationId, typing: false }).catch(() => {});
  }

  showTyping(typing) {
    clearTimeout(this.typingShownTimer);
    this.typing.textContent = typing ? `${this.otherLabel} is typing…` : '';
    if (typing) this.typingShownTimer = setTimeout(() => { this.typing.textContent = ''; }, TYPING_SHOWN_MS);
  }
}
