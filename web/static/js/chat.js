// One consultation's chat screen: bubbles in sequence order, sending → delivered → read ticks, typing, read
// receipts while the chat is in view. The client library's Conversation does the rest: order and dedupe by seq,
// the resync after every reconnection, resends with the same client id, unsent messages kept across a reload.

import { Conversation, codePoints } from '/static/client/index.js';
import { h, fill } from './dom.js';
import { clock } from './words.js';

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
   *   writable (false shows the history only), readOnlyNote (why it is read-only), maxChars (the server's
   *   longest message, in code points).
   */
  constructor({ realtime, session, consultationId, container, otherLabel, writable, readOnlyNote, maxChars }) {
    this.session = session;
    this.otherLabel = otherLabel;
    this.theirReadSeq = 0;
    this.sentReadSeq = 0;
    this.readReceiptDue = false;
    this.sending = new Map();  // client_msg_id → the bubble of a message not stored yet
    this.typingShownTimer = null;
    this.build(container, writable, readOnlyNote);
    const others = (handler) => (event) => { if (event.user_id !== this.ownId()) handler(event); };
    this.conversation = new Conversation({
      realtime, consultationId, maxChars, storage: sessionStorage,
      onMessage: (message) => this.show(message),
      onTyping: others((event) => this.showTyping(event.typing)),
      onRead: others((event) => this.markRead(event.read_seq)),
    });
    // Written before the tab was reloaded and not stored yet: shown as sending, and sent by the first resync.
    for (const { clientMsgId, body, sent } of this.conversation.unsent) this.addSending(clientMsgId, body, sent);
    this.onVisible = () => this.sendReadReceipt();
    document.addEventListener('visibilitychange', this.onVisible);
  }

  destroy() {
    this.conversation.close();
    clearTimeout(this.typingShownTimer);
    document.removeEventListener('visibilitychange', this.onVisible);
  }

  build(container, writable, readOnlyNote) {
    this.list = h('ol', { class: 'messages', 'aria-live': 'polite', 'aria-label': 'Messages' });
    this.typing = h('div', { class: 'typing', 'aria-live': 'polite' });
    // No maxlength: it counts UTF-16 units, the server counts code points (an emoji is two units, one point).
    this.input = h('textarea', { name: 'body', rows: 1, 'aria-label': 'Message', placeholder: 'Write a message' });
    this.input.addEventListener('input', () => { this.conversation.typed(); this.tooLong(); });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) { event.preventDefault(); this.form.requestSubmit(); }
    });
    this.limitNote = h('p', { class: 'warn small', 'aria-live': 'polite' });
    this.form = h('form', { class: 'composer', onsubmit: (event) => { event.preventDefault(); this.submit(); } },
      this.input, h('button', { class: 'primary', type: 'submit' }, 'Send'));
    this.form.hidden = !writable;
    this.note = h('p', { class: 'muted small' }, writable ? '' : (readOnlyNote || ''));
    fill(container, h('div', { class: 'chat' }, this.list, this.typing, this.form, this.limitNote, this.note));
  }

  setWritable(writable, note = '') {
    this.form.hidden = !writable;
    fill(this.note, writable ? '' : note);
  }

  ownId() { return this.session.user && this.session.user.id; }

  /** Says so (and refuses to send) when the draft is over the server's limit. */
  tooLong() {
    const { maxChars } = this.conversation;
    const over = codePoints(this.input.value.trim()) - maxChars;
    fill(this.limitNote, over > 0 ? `${over} character${over === 1 ? '' : 's'} too many: a message holds up to ${maxChars}.` : '');
    return over > 0;
  }

  submit() {
    const body = this.input.value.trim();
    if (!body || this.tooLong()) return;
    this.input.value = '';
    this.conversation.stopTyping();
    const sent = this.conversation.send(body);
    this.addSending(sent.clientMsgId, body, sent);
  }

  addSending(clientMsgId, body, sent) {
    const node = this.bubble(body, true);
    this.setTick(node, 'sending');
    node.querySelector('.time').textContent = 'now';
    this.sending.set(clientMsgId, node);
    this.list.append(node);
    this.list.scrollTop = this.list.scrollHeight;
    sent.catch((error) => {
      this.sending.delete(clientMsgId);
      this.setTick(node, 'failed');
      node.append(h('span', { class: 'meta' }, error.message));
    });
  }

  /** Called once per message, in seq order: own messages take over their "sending" bubble. */
  show(message) {
    const own = message.sender_id === this.ownId();
    const sending = own ? this.sending.get(message.client_msg_id) : null;
    const node = sending || this.bubble(message.body, own);
    this.sending.delete(message.client_msg_id);
    node.dataset.seq = String(message.seq);
    node.querySelector('.time').textContent = clock(message.sent_at);
    if (own) this.setTick(node, message.seq <= this.theirReadSeq ? 'read' : 'delivered');
    this.list.append(node);  // (re)appended in seq order, after any earlier messages that arrived meanwhile
    this.list.scrollTop = this.list.scrollHeight;
    this.scheduleReadReceipt();
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

  markRead(seq) {
    this.theirReadSeq = Math.max(this.theirReadSeq, seq);
    for (const node of this.list.querySelectorAll('.bubble.own[data-seq]')) {
      if (Number(node.dataset.seq) <= this.theirReadSeq) this.setTick(node, 'read');
    }
  }

  /** One receipt per batch of messages (a resync hands over many at once), not one per message. */
  scheduleReadReceipt() {
    if (this.readReceiptDue) return;
    this.readReceiptDue = true;
    queueMicrotask(() => { this.readReceiptDue = false; this.sendReadReceipt(); });
  }

  /** Only while the chat is on screen: a receipt says the person has seen the messages. */
  sendReadReceipt() {
    if (document.visibilityState !== 'visible' || this.list.offsetParent === null) return;
    const last = this.conversation.last;
    if (last <= this.sentReadSeq || !this.conversation.realtime.connected) return;
    this.sentReadSeq = last;
    this.conversation.markRead(last).catch(() => { this.sentReadSeq = 0; });
  }

  showTyping(typing) {
    clearTimeout(this.typingShownTimer);
    this.typing.textContent = typing ? `${this.otherLabel} is typing…` : '';
    if (typing) this.typingShownTimer = setTimeout(() => { this.typing.textContent = ''; }, TYPING_SHOWN_MS);
  }
}
