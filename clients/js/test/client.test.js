// The client library against a live SkinDoc server (started by tests/test_js_client.py, which sets the env).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { io } from 'socket.io-client';

import { Conversation, QueueWatch, Realtime, Session, messageLimit } from '../index.js';

const { SKINDOC_URL: url, SKINDOC_PATIENT_EMAIL, SKINDOC_DOCTOR_EMAIL, SKINDOC_RIVAL_EMAIL, SKINDOC_PASSWORD: password } = process.env;
const SYMPTOMS = { size_changed: true, shape_irregular: false, colour_irregular: true, diameter_7mm: false,
  inflamed: false, oozing: false, sensation_changed: false, duration: 'months' };

/** Resolves when `predicate()` holds, polling; rejects after `ms`. */
async function eventually(predicate, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The Web Storage interface over a Map, as sessionStorage would be in a browser. */
function mapStorage() {
  const items = new Map();
  return { getItem: (k) => (items.has(k) ? items.get(k) : null), setItem: (k, v) => items.set(k, v), removeItem: (k) => items.delete(k) };
}

async function signedIn(email) {
  const session = new Session({ baseUrl: url });
  await session.signIn(email, password);
  const realtime = new Realtime({ session, io, url, transports: ['websocket'] });
  await realtime.connect();
  return { session, realtime };
}

let patient;
let doctor;
before(async () => {
  patient = await signedIn(SKINDOC_PATIENT_EMAIL);
  doctor = await signedIn(SKINDOC_DOCTOR_EMAIL);
});
after(() => {
  for (const side of [patient, doctor]) {
    side.realtime.close();
    side.session.signOut();
  }
});

test('token renewal reaches HTTP calls and the open connection', async () => {
  const before = patient.session.accessToken;
  await patient.session.refresh();
  assert.notEqual(patient.session.accessToken, before);
  assert.equal((await patient.session.get('/api/v1/me')).user.id, patient.session.user.id);
  const { expires_at: expiresAt } = await patient.realtime.call('session:refresh', { token: patient.session.accessToken });
  assert.ok(Date.parse(expiresAt) > Date.now());
});

test('two consoles race for one case: the loser hears 409 already_taken, a bad id 404', async () => {
  const rival = await signedIn(SKINDOC_RIVAL_EMAIL);
  const watches = [new QueueWatch({ realtime: doctor.realtime }), new QueueWatch({ realtime: rival.realtime })];
  try {
    await race(watches);
  } finally {
    await Promise.all(watches.map((watch) => watch.close()));
    rival.realtime.close();
    await rival.session.signOut();
  }
});

async function race(watches) {
  await Promise.all(watches.map((watch) => watch.setAvailability('away')));  // nobody is given it meanwhile
  const opened = await patient.session.post('/api/v1/consultations', { description: 'Raced for', body_site: 'leg', symptoms: SYMPTOMS });
  const results = await Promise.allSettled(watches.map((watch) => watch.take(opened.id)));
  const winner = results.findIndex((result) => result.status === 'fulfilled');
  assert.notEqual(winner, -1, JSON.stringify(results));
  const loser = 1 - winner;
  assert.equal(results[loser].status, 'rejected');
  assert.equal(results[loser].reason.status, 409);
  assert.equal(results[loser].reason.code, 'already_taken');
  // Not a matter of timing: taken is taken; the winner's own second try is another answer; a bad id is 404.
  await assert.rejects(watches[loser].take(opened.id), { status: 409, code: 'already_taken' });
  await assert.rejects(watches[winner].take(opened.id), { status: 409, code: 'wrong_state' });
  await assert.rejects(watches[loser].take('00000000-0000-4000-8000-000000000000'), { status: 404, code: 'consultation_not_found' });
  // Cancelled, so that neither doctor already has an active case with this patient in the next test.
  await patient.session.post(`/api/v1/consultations/${opened.id}/cancel`, {});
}

test('a console takes a case; both chat in order, once each, across a dropped connection', async () => {
  const snapshots = [];
  const watch = new QueueWatch({ realtime: doctor.realtime, onQueue: (snapshot) => snapshots.push(snapshot) });
  await watch.subscribe();
  await watch.setAvailability('away');
  const opened = await patient.session.post('/api/v1/consultations', { description: 'A mole that grew', body_site: 'arm', symptoms: SYMPTOMS });
  await eventually(() => watch.queue.some((entry) => entry.consultation_id === opened.id), 5000, 'the queue snapshot');
  const taken = await watch.take(opened.id);
  assert.equal(taken.state, 'active');

  const seen = { patient: [], doctor: [] };
  const typing = [];
  const reads = [];
  const maxChars = await messageLimit(patient.session);
  assert.equal(maxChars, 2000);  // the server's default, read from its AsyncAPI document
  const patientChat = new Conversation({ realtime: patient.realtime, consultationId: opened.id, maxChars, typingIdleMs: 200,
    onMessage: (m) => seen.patient.push(m.seq), onRead: (r) => reads.push(r.read_seq) });
  const doctorChat = new Conversation({ realtime: doctor.realtime, consultationId: opened.id,
    onMessage: (m) => seen.doctor.push(m.seq), onTyping: (t) => typing.push(t.typing) });
  await Promise.all([patientChat.syncing, doctorChat.syncing]);

  const first = await patientChat.send('Hello 😀');
  assert.equal(first.seq, 1);
  for (const body of ['one', 'two', 'three']) await doctorChat.send(body);
  await eventually(() => seen.patient.length === 4 && seen.doctor.length === 4, 5000, 'four messages on both sides');
  assert.deepEqual(seen.patient, [1, 2, 3, 4]);
  assert.deepEqual(seen.doctor, [1, 2, 3, 4]);

  // Duplicates and reordering change nothing.
  patientChat.receive([{ seq: 3 }, { seq: 1 }, { seq: 4 }]);
  assert.deepEqual(seen.patient, [1, 2, 3, 4]);

  // The patient drops off; the doctor writes meanwhile; the patient writes while offline.
  const statuses = [];
  const stopStatuses = patient.realtime.onStatus((status) => statuses.push(status));
  patient.realtime.disconnect();
  await doctorChat.send('while you were away');
  const offline = patientChat.send('written offline');
  assert.equal(patientChat.pending.size, 1);
  await patient.realtime.connect();
  assert.deepEqual(statuses, ['closed', 'online']);
  stopStatuses();
  const resent = await offline;
  assert.equal(resent.seq, 6);
  await eventually(() => seen.doctor.length === 6 && seen.patient.length === 6, 5000, 'the resync');
  assert.deepEqual(seen.patient, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(seen.doctor, [1, 2, 3, 4, 5, 6]);

  // A resend with the same client id is stored once.
  const again = await patient.realtime.call('message:send', { consultation_id: opened.id, client_msg_id: resent.client_msg_id, body: 'written offline' });
  assert.equal(again.duplicate, true);
  assert.equal(again.message.seq, 6);

  // Keystrokes: "typing" once, "stopped" after the idle time.
  patientChat.typed();
  patientChat.typed();
  patientChat.typed();
  await eventually(() => typing.includes(false), 5000, 'the typing pushes');
  assert.deepEqual(typing, [true, false]);
  await doctorChat.markRead();
  await eventually(() => reads.includes(6), 5000, 'the read push');

  // A lost push: the gap is filled from the server after the short wait, and order holds.
  const gapChat = new Conversation({ realtime: patient.realtime, consultationId: opened.id, gapWaitMs: 100,
    onMessage: (m) => seen.gap.push(m.seq) });
  seen.gap = [];
  await gapChat.syncing;
  gapChat.unsubscribe[0]();  // this view stops hearing pushes, as when one is lost in transit
  await doctorChat.send('lost push');
  const after = await doctorChat.send('after the lost one');
  gapChat.receive([after]);
  assert.deepEqual(seen.gap.slice(-1), [6]);
  await eventually(() => seen.gap.at(-1) === after.seq, 5000, 'the gap to be filled');
  assert.deepEqual(seen.gap, [1, 2, 3, 4, 5, 6, 7, 8]);
  gapChat.close();

  // Lengths are code points: the limit in emoji (twice as many UTF-16 units) is stored; one more is refused
  // here, and by the server for a client that counts otherwise.
  const atLimit = await patientChat.send('😀'.repeat(maxChars));
  assert.equal(atLimit.seq, 9);
  assert.equal([...atLimit.body].length, maxChars);
  await assert.rejects(patientChat.send('😀'.repeat(maxChars + 1)), { code: 'invalid_field', field: 'body' });
  await assert.rejects(patient.realtime.call('message:send', { consultation_id: opened.id, client_msg_id: 'c-too-long', body: '😀'.repeat(maxChars + 1) }),
    { status: 422, field: 'body' });
  // A frame over 64 KiB is refused locally; the connection stays up.
  await assert.rejects(patient.realtime.call('typing', { consultation_id: opened.id, pad: 'x'.repeat(70000) }), { code: 'frame_too_large' });
  assert.ok(patient.realtime.connected);
  // The server's typed errors come through as they are.
  await assert.rejects(patient.realtime.call('message:sync', { consultation_id: opened.id, afterSeq: 0 }),
    { status: 422, code: 'unknown_field', field: 'afterSeq' });

  // Written offline, then the app reloaded before the connection came back: the message waits in storage
  // and goes out once, with its first client id.
  const storage = mapStorage();
  const beforeReload = new Conversation({ realtime: patient.realtime, consultationId: opened.id, storage });
  await beforeReload.syncing;
  patient.realtime.disconnect();
  const unsent = beforeReload.send('kept across a reload');
  await beforeReload.close();
  const afterReload = new Conversation({ realtime: patient.realtime, consultationId: opened.id, storage });
  const [restored] = afterReload.unsent;
  assert.deepEqual([restored.clientMsgId, restored.body], [unsent.clientMsgId, 'kept across a reload']);
  await patient.realtime.connect();
  const delivered = await restored.sent;
  assert.equal(delivered.client_msg_id, unsent.clientMsgId);
  assert.equal(delivered.seq, 10);
  assert.equal(storage.getItem(`skindoc.unsent.${opened.id}`), null);
  await eventually(() => seen.doctor.at(-1) === 10, 5000, 'the message from before the reload');

  // Leaving a case page and coming straight back: the new view joins only once the leaves are answered, so the
  // connection stays in the room and the other side's pushes still arrive.
  afterReload.close();
  patientChat.close();
  const reopened = [];
  const reopenedChat = new Conversation({ realtime: patient.realtime, consultationId: opened.id, onMessage: (m) => reopened.push(m.seq) });
  await reopenedChat.syncing;
  assert.equal(reopened.at(-1), 10);
  const pushed = await doctorChat.send('after coming back');
  await eventually(() => reopened.at(-1) === pushed.seq, 5000, 'the push to the view opened again');

  await Promise.all([reopenedChat.close(), doctorChat.close(), watch.close()]);
});
