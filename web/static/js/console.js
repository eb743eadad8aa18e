// The doctor console: availability, the live queue, active consultations as tabs (photos, chat, appointments,
// transfer, resolution); administrators get the admin view instead.

import { $, h, fill, showOnly, formValues, showFormError, busy } from './dom.js';
import { Session } from './api.js';
import { Realtime } from './realtime.js';
import { ChatView } from './chat.js';
import { setupSignIn } from './signin.js';
import { setupAdmin } from './admin.js';
import * as words from './words.js';
import { WORKING_DIAGNOSES } from './diagnoses.js';

const session = new Session('console');
const realtime = new Realtime(session, $('#reconnecting'));
const cases = new Map();  // consultation id → { consultation, tab, panel, chat }
let selectedCaseId = null;
let doctorsOnline = [];
let me = null;  // { doctor_id, availability, online, capacity, active }
const thumbnails = new Map();  // consultation id → Promise<object URL | null>

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
  realtime.start();
}

function signedOut() {
  realtime.stop();
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
    const reply = await realtime.call('presence:set', { availability });
    renderMe(reply.doctor);
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
      .then(({ photos }) => (photos.length ? session.imageUrl(photos[0].thumbnail_url) : null))
      .catch(() => { thumbnails.delete(consultationId); return null; }));
  }
  return thumbnails.get(consultationId);
}

async function take(consultationId) {
  showQueueError(null);
  try {
    const payload = consultationId ? { consultation_id: consultationId } : {};
    const { consultation } = await realtime.call('queue:take', payload);
    openCase(consultation, true);
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
    buildCasePanel(entry);
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

function buildCasePanel(entry) {
  const { consultation, panel } = entry;
  entry.header = h('div');
  entry.viewer = h('div');
  const chatBox = h('div');
  fill(panel,
    entry.header,
    h('div', { class: 'case-grid' },
      h('div', {}, h('h3', {}, 'Photos'), entry.viewer),
      h('div', {}, h('h3', {}, 'Chat with the patient'), chatBox)),
    h('div', {}, h('h3', {}, 'Follow-up appointment'), appointmentForm(entry)),
    h('div', { class: 'case-grid' },
      h('div', {}, h('h3', {}, 'Resolve'), resolveForm(entry)),
      h('div', {}, h('h3', {}, 'Hand over'), transferForm(entry))));
  entry.chat = new ChatView({ realtime, session, consultationId: consultation.id, container: chatBox,
    otherLabel: 'The patient', writable: true });
  loadPhotos(entry);
  loadAppointments(entry);
}

function renderCaseHeader(entry) {
  const c = entry.consultation;
  fill(entry.header,
    h('div', { class: 'heading-row' },
      h('h2', {}, `${words.BODY_SITES[c.body_site] || c.body_site}`),
      h('span', {}, words.bandChip(c.urgency, false), ' ',
        c.awaiting_score ? null : h('strong', {}, `p(malignant) ${words.percent(c.p_malignant)}`), ' ',
        words.gateChip(c))),
    h('p', { class: 'screening-aid' }, `Screening aid, not a diagnosis. Model ${c.model_version || '—'}.`),
    h('p', { class: 'title' }, c.description),
    h('dl', { class: 'facts' },
      words.fact('Why this band', words.reasonLines(c)),
      words.fact('Duration', words.durationWords(c.symptoms)),
      words.fact('Opened', words.when(c.created_at)),
      words.fact('Assigned', words.when(c.assigned_at))));
}

async function loadPhotos(entry) {
  try {
    const { photos } = await session.get(`/api/v1/consultations/${entry.consultation.id}/photos`);
    if (!photos.length) { fill(entry.viewer, h('p', { class: 'muted' }, 'No photos.')); return; }
    const main = h('img', { alt: 'Selected photo' });
    const overlay = h('img', { class: 'overlay', alt: '', hidden: true });
    const toggle = h('input', { type: 'checkbox' });
    const probs = h('ul', { class: 'probs', 'aria-label': 'Per-class probabilities' });
    const note = h('p', { class: 'muted small', role: 'status' });
    let current = null;
    const show = async (photo) => {
      current = photo;
      main.src = await session.imageUrl(photo.image_url);
      overlay.hidden = true;
      toggle.checked = false;
      fill(probs, probabilityRows(photo));
    };
    toggle.addEventListener('change', async () => {
      fill(note);
      if (!toggle.checked) { overlay.hidden = true; return; }
      if (!current.saliency_url) {
        // Drawn by the worker when it is idle: it may have landed since the list was fetched.
        const fresh = await session.get(`/api/v1/consultations/${entry.consultation.id}/photos`);
        current = fresh.photos.find((photo) => photo.id === current.id) || current;
      }
      if (!current.saliency_url) {
        toggle.checked = false;
        fill(note, 'The overlay is not ready yet; try again in a moment.');
        return;
      }
      if (overlay.dataset.photo !== current.id) {
        overlay.src = await session.imageUrl(current.saliency_url);
        overlay.dataset.photo = current.id;
      }
      overlay.hidden = !toggle.checked;
    });
    const strip = photos.map((photo) => {
      const img = h('img', { class: 'thumb', alt: `Photo ${photo.tag || ''}`.trim() });
      session.imageUrl(photo.thumbnail_url).then((url) => { img.src = url; }).catch(() => {});
      return h('button', { type: 'button', class: 'link-button', onclick: () => show(photo), 'aria-label': 'Show this photo' }, img);
    });
    fill(entry.viewer,
      h('div', { class: 'viewer' }, main, overlay),
      h('label', { class: 'check' }, toggle, 'Show the saliency map (where the model saw signs of malignancy)'), note,
      h('div', { class: 'row-inline' }, strip),
      probs);
    await show(photos[0]);
  } catch (error) {
    fill(entry.viewer, h('p', { class: 'form-error' }, error.message));
  }
}

function probabilityRows(photo) {
  if (!photo.score) return [h('li', {}, photo.status === 'failed' ? `Not scored: ${photo.failure_reason}` : 'Being scored…')];
  // The photo gate's verdict on this photo, above its numbers.
  const verdict = h('li', { class: photo.score.gate.trusted ? 'gate-ok' : 'gate-untrusted' },
    `Photo gate: ${photo.score.gate.summary}`);
  const sorted = Object.entries(photo.score.probabilities || {}).sort((a, b) => b[1] - a[1]);
  return [verdict, ...sorted.map(([name, p]) => {
    const bar = h('span');
    bar.style.width = `${Math.round(p * 100)}%`;  // CSSOM, which the style-src policy allows
    return h('li', {}, h('span', { title: name }, words.LESION_CLASSES[name] || name), h('span', { class: 'bar' }, bar),
      h('span', {}, words.percent(p)));
  })];
}

function slotRow() {
  const start = new Date(Date.now() + 24 * 3600 * 1000);
  start.setMinutes(0, 0, 0);
  const local = new Date(start.getTime() - start.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  return h('div', { class: 'slot-row' },
    h('label', {}, 'Starts', h('input', { type: 'datetime-local', name: 'starts_at', value: local, required: true })),
    h('label', {}, 'Minutes', h('select', { name: 'minutes' }, [10, 15, 20, 30].map((m) => h('option', { value: m, selected: m === 20 }, String(m))))),
    h('label', {}, 'Kind', h('select', { name: 'kind' }, h('option', { value: 'video' }, 'Video'), h('option', { value: 'in_person' }, 'In person'))),
    h('label', {}, 'Link or address', h('input', { type: 'text', name: 'location', maxlength: 300 })),
    h('button', { type: 'button', class: 'small', onclick: (event) => event.target.closest('.slot-row').remove(), 'aria-label': 'Remove this time' }, '×'));
}

function appointmentForm(entry) {
  const slots = h('div', {}, slotRow());
  entry.appointments = h('div');
  const form = h('form', { novalidate: true },
    entry.appointments, h('p', { class: 'muted small' }, 'Offer the patient one or more times:'), slots,
    h('p', { class: 'form-error', role: 'alert', hidden: true }),
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => slots.append(slotRow()) }, 'Add another time'),
      h('button', { type: 'submit', class: 'primary' }, 'Propose')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const proposed = [...slots.querySelectorAll('.slot-row')].map((row) => ({
      starts_at: new Date(row.querySelector('[name=starts_at]').value).toISOString(),
      minutes: Number(row.querySelector('[name=minutes]').value),
      kind: row.querySelector('[name=kind]').value,
      location: row.querySelector('[name=location]').value.trim(),
    }));
    busy(form, async () => {
      try {
        showFormError(form, null);
        await realtime.call('appointment:propose', { consultation_id: entry.consultation.id, slots: proposed });
        await loadAppointments(entry);
      } catch (error) {
        showFormError(form, error);
      }
    });
  });
  return form;
}

async function loadAppointments(entry) {
  const { appointments } = await session.get('/api/v1/appointments');
  fill(entry.appointments, appointments.filter((a) => a.consultation_id === entry.consultation.id).map((a) => {
    const slot = a.slots.find((s) => s.id === a.confirmed_slot_id);
    const text = a.state === 'confirmed' && slot ? `Confirmed by the patient: ${words.when(slot.starts_at)} (${slot.kind === 'video' ? 'video' : 'in person'})`
      : a.state === 'declined' ? `Declined by the patient${a.decline_reason ? `: ${a.decline_reason}` : ''}`
        : `Proposed ${a.slots.length} time(s); waiting for the patient.`;
    return h('p', { class: 'notice', dataset: { state: a.state } }, text);
  }));
}

function resolveForm(entry) {
  const outcome = h('select', { name: 'outcome', required: true }, h('option', { value: '' }, 'Choose…'),
    Object.entries(words.OUTCOMES).map(([value, label]) => h('option', { value }, label)));
  const diagnosis = h('select', { name: 'diagnosis', required: true }, h('option', { value: '' }, 'Choose…'),
    Object.entries(WORKING_DIAGNOSES).map(([value, label]) => h('option', { value }, label)));
  const form = h('form', { novalidate: true },
    h('label', {}, 'Outcome', outcome),
    h('label', {}, 'Working diagnosis (for this clinic\'s triage figures; not shown to the patient)', diagnosis),
    h('label', { class: 'switch' }, h('input', { type: 'checkbox', name: 'biopsy_taken' }), 'Biopsy taken'),
    h('label', {}, 'Note for the patient', h('textarea', { name: 'note', required: true, maxlength: 4000 })),
    h('p', { class: 'form-error', role: 'alert', hidden: true }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Resolve')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = formValues(form);
    busy(form, async () => {
      try {
        showFormError(form, null);
        await realtime.call('consultation:resolve', { consultation_id: entry.consultation.id, ...values });
        closeCase(entry.consultation.id);
      } catch (error) {
        showFormError(form, error);
      }
    });
  });
  return form;
}

function transferForm(entry) {
  const target = h('select', { name: 'to_doctor_id' });
  const form = h('form', { novalidate: true },
    h('label', {}, 'Hand over to', target),
    h('label', {}, 'Reason', h('input', { type: 'text', name: 'reason', required: true, maxlength: 500 })),
    h('p', { class: 'form-error', role: 'alert', hidden: true }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Transfer')));
  const refreshTargets = () => fill(target, h('option', { value: '' }, 'The queue (any doctor)'),
    doctorsOnline.filter((d) => d.doctor_id !== (me && me.doctor_id) && d.online).map((d) =>
      h('option', { value: d.doctor_id }, `Doctor ${d.doctor_id.slice(0, 8)} (${d.availability}, ${d.active}/${d.capacity})`)));
  target.addEventListener('focus', refreshTargets);
  refreshTargets();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const { reason, to_doctor_id: to } = formValues(form);
    busy(form, async () => {
      try {
        showFormError(form, null);
        await realtime.call('consultation:transfer',
          { consultation_id: entry.consultation.id, reason, ...(to ? { to_doctor_id: to } : {}) });
        closeCase(entry.consultation.id);
      } catch (error) {
        showFormError(form, error);
      }
    });
  });
  return form;
}

// ---- live updates and resync ----

async function resync() {
  const [{ queue, doctors }, doctor, { consultations }] = await Promise.all([
    realtime.call('queue:subscribe', {}),
    session.get('/api/v1/doctors/me'),
    session.get('/api/v1/consultations?state=active&limit=50'),
  ]);
  me = doctor;
  doctorsOnline = doctors || [];
  const mine = consultations.filter((c) => c.doctor_id === me.doctor_id);
  for (const id of [...cases.keys()]) if (!mine.some((c) => c.id === id)) closeCase(id);
  for (const consultation of mine.reverse()) openCase(consultation);
  renderMe();
  renderQueue(queue);
}

realtime.onResync(() => resync().catch(showQueueError));
realtime.on('queue:snapshot', ({ queue, doctors }) => {
  doctorsOnline = doctors || doctorsOnline;
  renderQueue(queue);
});
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
session.addEventListener('signedout', signedOut);
setupSignIn(session, signedIn);

session.restore()
  .then((restored) => (restored ? signedIn() : signedOut()))
  .catch(() => signedOut());
