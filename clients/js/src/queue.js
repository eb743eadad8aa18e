// A doctor's console: the live queue (re-subscribed after every reconnection), availability and taking cases.

export class QueueWatch {
  /** @param {object} options realtime, onQueue({queue, doctors}) — the whole queue, on every change. */
  constructor({ realtime, onQueue = () => {} }) {
    this.realtime = realtime;
    this.onQueue = onQueue;
    this.queue = [];
    this.doctors = [];
    this.stopSnapshots = realtime.on('queue:snapshot', (snapshot) => this.update(snapshot));
    this.stopResync = realtime.onResync(() => this.subscribe().catch(() => {}));
  }

  async subscribe() {
    this.update(await this.realtime.call('queue:subscribe', {}));
  }

  update({ queue, doctors }) {
    this.queue = queue;
    this.doctors = doctors;
    this.onQueue({ queue, doctors });
  }

  setAvailability(availability) {
    return this.realtime.call('presence:set', { availability }).then((reply) => reply.doctor);
  }

  /**
   * Takes a named waiting case, or the head of the queue. A case another doctor got first rejects with
   * code `already_taken` (409); an id that names no case with `consultation_not_found` (404).
   */
  take(consultationId = null) {
    const payload = consultationId ? { consultation_id: consultationId } : {};
    return this.realtime.call('queue:take', payload).then((reply) => reply.consultation);
  }

  /** Stops listening; resolves once the server has stopped sending snapshots to this connection. */
  close() {
    this.stopSnapshots();
    this.stopResync();
    return this.realtime.connected ? this.realtime.call('queue:unsubscribe', {}).catch(() => {}) : Promise.resolve();
  }
}
