// The doctor console: availability, the live queue, active consultations as tabs (photos, chat, appointments,
// transfer, resolution); administrators get the admin view instead.

import { io } from '/static/vendor/socket.io.esm.min.js';
import { Session, Realtime, QueueWatch } from '/static/client/index.js';
import { $, h, fill, showOnly, showFormError } from './dom.js';
import { buildCasePanel, renderCaseHeader, loadAppointments, imageUrl } from './case_panel.js';
import { setupSignIn, pageConfig } from './signin.js';
import { setupAdmin } from './admin.js';
import * as words from './words.js';

// The refresh token lives in this tab's sessionStorage: a reload keeps the session, closing the tab ends it.
const session = new Session({ storage: sessionStorage, storageKey: 'skindoc.console.refresh' });
const realtime = new Realtime({ session, io });
realtime.onStatus((status) => { $('#reconnecting').hidden = status !== 'offline'; });
const config = pageConfig();
const cases = new Map();  // consultation id → { consultation, tab, panel, chat }
let selectedCaseId = null;
let doctorsOnline = [];
let me = null;  // { doctor_id, availability, online, capacity, active }
const thumbnails = new Map();  // consultation id → Promise<object URL | null>
// What each case panel needs from the console.
const desk = {
  session, realtime, maxChars: config.chat.max_message_chars, closeCase: (id) => closeCase(id),
  colleagues: () => doctorsOnline.filter((d) => d.doctor_id !== (me && me.doctor_id) && d.online),
};

// ---- sign-in and the three kinds of user ----

async function signedIn() {
  const user = await session.loadUser();
  await words.loadBands(session);
  $('#who').textContent = user.name;
  $('#who').hidden = false;
  $('#sign-out').hidden = false;
  if (user.role === 'patient') {
    await session.signOut();
    showFormError($('#form-signin'), new Error('This console is for doctors; patients use the SkinDoc app at /.'));
    return;
  }
  if (user.role === 'admin') {
    showOnly('.view', $('#view-admin'));
    setupAdmin(session);
    return;
  }
  if (user.status !== 'active') {
    showOnly('.view', $('#view-pending'));
    return;
  }
  $('#still-pending').hidden = true;
  showOnly('.view', $('#view-console'));
  $('#doctor-controls').hidden = false;
  realtime.connect().catch(() => { /* refused: the library renews the token and tries again */ });
}

function signedOut() {
  realtime.disconnect();
  for (const id of [...cases.keys()]) closeCase(id);
  for (const selector of ['#who', '#sign-out', '#doctor-controls']) $(selector).hidden = true;
  showOnly('.view', $('#view-signin'));
}

// ---- availability and capacity ----

function renderMe(doctor) {
  if (doctor) me = { ...me, ...doctor };
  if (!me) return;
  $('#availability').checked = me.availability === 'available';
  $('#capacity').textContent = `${cases.size}/${me.capacity}`;
  $('#take-next').disabled = cases.size >= me.capacity;
}

async function setAvailability(event) {
  const availability = event.target.checked ? 'available' : 'away';
  try {
    renderMe(await watch.setAvailability(availability));
  } catch (error) {
    event.target.checked = !event.target.checked;
    showQueueError(error);
  }
}

// ---- the queue ----

function showQueueError(error) {
  const box = $('#queue-error');
  box.hidden = !error;
  box.textContent = error ? error.message : '';
}

// Between pushes (which come on changes only) the waiting times are aged here, from when the snapshot arrived.
const QUEUE_CLOCK_MS = 30000;
let lastQueue = { entries: [], receivedAt: 0 };
setInterval(() => { if (lastQueue.entries.length) renderQueue(lastQueue.entries, lastQueue.receivedAt); }, QUEUE_CLOCK_MS);

function renderQueue(queue, receivedAt = Date.now()) {
  lastQueue = { entries: queue, receivedAt };
  const agedBy = (Date.now() - receivedAt) / 1000;
  $('#queue-count').textContent = queue.length ? `(${queue.length} waiting)` : '';
  $('#queue-empty').hidden = queue.length > 0;
  const full = me && cases.size >= me.capacity;
  fill($('#queue-list'), queue.map((entry) => {
    const thumb = h('img', { class: 'thumb', alt: `Photo, ${words.BODY_SITES[entry.body_site] || entry.body_site}` });
    thumbnailFor(entry.consultation_id).then((url) => { if (url) thumb.src = url; });
    return h('li', { class: 'queue-item', dataset: { id: entry.consultation_id } },
      thumb,
      h('div', { class: 'grow' },
        h('div', { class: 'queue-head' },
          words.bandChip(entry.effective_band || entry.urgency, entry.awaiting_score),
          entry.awaiting_score ? null : h('strong', { class: 'score' }, words.percent(entry.p_malignant)),
          words.gateChip(entry),
          h('span', { class: 'meta' }, `waiting ${words.duration(entry.waiting_seconds + agedBy)}`)),
        h('div', { class: 'queue-title' }, h('strong', {}, `${words.BODY_SITES[entry.body_site] || entry.body_site}: `),
          entry.description),
        words.reasonLines(entry),
        h('div', { class: 'meta' }, words.durationWords(entry.symptoms)),
        h('button', { type: 'button', class: 'small', disabled: full, onclick: () => take(entry.consultation_id) },
          'Take this one')));
  }));
}

/** The first photo's thumbnail of a waiting case, fetched once per case. */
function thumbnailFor(consultationId) {
  if (!thumbnails.has(consultationId)) {
    thumbnails.set(consultationId, session.get(`/api/v1/consultations/${consultationId}/photos`)
      .then(({ photos }) => (photos.length ? imageUrl(session, photos[0].thumbnail_url) : null))
      .catch(() => { thumbnails.delete(consultationId); return null; }));
  }
  return thumbnails.get(consultationId);
}

async function take(consultationId) {
  showQueueError(null);
  try {
    openCase(await watch.take(consultationId), true);
  } catch (error) {
    showQueueError(error);
  }
}

// ---- active consultations as tabs ----

function openCase(consultation, select = false) {
  let entry = cases.get(consultation.id);
  if (!entry) {
    const tab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'false', id: `tab-${consultation.id}`,
      onclick: () => selectCase(consultation.id) });
    const panel = h('div', { class: 'case-panel', role: 'tabpanel', 'aria-labelledby': `tab-${consultation.id}`, hidden: true });
    $('#case-tabs').append(tab);
    $('#case-panels').append(panel);
    entry = { consultation, tab, panel, chat: null };
    cases.set(consultation.id, entry);
    buildCasePanel(entry, desk);
  }
  entry.consultation = consultation;
  const band = consultation.awaiting_score ? 'awaiting score' : consultation.urgency;
  entry.tab.textContent = `${words.BODY_SITES[consultation.body_site] || consultation.body_site} · ${band}`;
  entry.tab.title = consultation.description;
  renderCaseHeader(entry);
  $('#no-cases').hidden = true;
  if (select || !selectedCaseId) selectCase(consultation.id);
  renderMe();
}

function closeCase(id) {
  const entry = cases.get(id);
  if (!entry) return;
  if (entry.chat) entry.chat.destroy();
  entry.tab.remove();
  entry.panel.remove();
  cases.delete(id);
  if (selectedCaseId === id) {
    selectedCaseId = null;
    const next = cases.keys().next();
    if (!next.done) selectCase(next.value);
  }
  $('#no-cases').hidden = cases.size > 0;
  renderMe();
}

function selectCase(id) {
  selectedCaseId = id;
  for (const [caseId, entry] of cases) {
    entry.tab.setAttribute('aria-selected', String(caseId === id));
    entry.panel.hidden = caseId !== id;
  }
  const entry = cases.get(id);
  if (entry && entry.chat) entry.chat.sendReadReceipt();
}

// ---- live updates and resync ----

// The queue, subscribed again after every reconnection; each snapshot redraws it.
const watch = new QueueWatch({ realtime, onQueue: ({ queue, doctors }) => {
  doctorsOnline = doctors;
  renderQueue(queue);
} });

/** After every (re)connection: this doctor's capacity and open cases, which may have moved meanwhile. */
async function resync() {
  const [doctor, { consultations }] = await Promise.all([
    session.get('/api/v1/doctors/me'),
    session.get('/api/v1/consultations?state=active&limit=50'),
  ]);
  me = doctor;
  const mine = consultations.filter((c) => c.doctor_id === me.doctor_id);
  for (const id of [...cases.keys()]) if (!mine.some((c) => c.id === id)) closeCase(id);
  for (const consultation of mine.reverse()) openCase(consultation);
  renderMe();
  renderQueue(lastQueue.entries, lastQueue.receivedAt);  // again, now that capacity is known
}

realtime.onResync(() => resync().catch(showQueueError));
realtime.on('presence', (presence) => { if (me && presence.doctor_id === me.doctor_id) renderMe(presence); });
realtime.on('consultation:updated', ({ consultation }) => {
  const mine = me && consultation.doctor_id === me.doctor_id && consultation.state === 'active';
  if (mine) openCase(consultation);
  else closeCase(consultation.id);
});
realtime.on('appointment:updated', ({ appointment }) => {
  const entry = cases.get(appointment.consultation_id);
  if (entry) loadAppointments(entry);
});

// ---- start ----

$('#availability').addEventListener('change', setAvailability);
$('#take-next').addEventListener('click', () => take(null));
$('#check-approval').addEventListener('click', async () => {
  // New tokens carry the account's current status.
  await session.refresh();
  await signedIn();
  $('#still-pending').hidden = !$('#view-pending').offsetParent;
});
$('#sign-out').addEventListener('click', () => session.signOut());
session.onSignedOut(signedOut);
setupSignIn(session, signedIn);

session.restore()
  .then((restored) => (restored ? signedIn() : signedOut()))
  .catch(() => signedOut());
