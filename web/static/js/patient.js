// The patient app: sign in, open a consultation with photos, follow it live, chat, answer appointments.

import { io } from '/static/vendor/socket.io.esm.min.js';
import { Session, Realtime } from '/static/client/index.js';
import { $, h, fill, showOnly, formValues, showFormError, busy } from './dom.js';
import { ChatView } from './chat.js';
import { preparePhoto, uploadPhoto } from './photos.js';
import { setupNewConsultation } from './new_consultation.js';
import { setupSignIn, pageConfig } from './signin.js';
import * as words from './words.js';

// The refresh token lives in this tab's sessionStorage: a reload keeps the session, closing the tab ends it.
const session = new Session({ storage: sessionStorage, storageKey: 'skindoc.patient.refresh' });
const realtime = new Realtime({ session, io });
realtime.onStatus((status) => { $('#reconnecting').hidden = status !== 'offline'; });
const config = pageConfig();
const limits = config.photos;  // the server's own limits, written into the page
let currentCase = null;  // { id, consultation, chat }

// ---- routing: #/ (home), #/new, #/case/<id> ----

function route() {
  $('#page-error').hidden = true;
  if (!session.signedIn) return showSignIn();
  const [, page, id] = location.hash.split('/');
  if (page !== 'case') leaveCase();
  const shown = page === 'new' ? showNew() : page === 'case' && id ? showCase(id) : showHome();
  return Promise.resolve(shown).catch(showPageError);
}

function showPageError(error) {
  const box = $('#page-error');
  box.textContent = error.message;
  box.hidden = false;
}

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function showSignIn() {
  fill($('#who'));
  $('#who').hidden = true;
  $('#sign-out').hidden = true;
  showOnly('.view', $('#view-signin'));
}

async function signedIn() {
  await session.loadUser();
  await words.loadBands(session);
  if (session.user.role !== 'patient') {
    await session.signOut();
    showFormError($('#form-signin'), new Error('This is the patient app; doctors sign in at /console.'));
    return;
  }
  $('#who').textContent = session.user.name;
  $('#who').hidden = false;
  $('#sign-out').hidden = false;
  realtime.connect().catch(() => { /* refused: the library renews the token and tries again */ });
  route();
}

// ---- home: consultations and appointments ----

async function showHome() {
  showOnly('.view', $('#view-home'));
  const [{ consultations }, { appointments }] = await Promise.all([
    session.get('/api/v1/consultations?limit=50'), session.get('/api/v1/appointments')]);
  $('#home-empty').hidden = consultations.length > 0;
  fill($('#consultation-list'), consultations.map((c) => h('li', {},
    h('div', { class: 'grow' },
      h('button', { type: 'button', class: 'link-button title', onclick: () => go(`#/case/${c.id}`) },
        `${words.BODY_SITES[c.body_site] || c.body_site} — ${c.description.slice(0, 80)}`),
      h('div', { class: 'muted small' }, `Opened ${words.when(c.created_at)}`)),
    h('span', { class: `status status-${c.state}` }, words.STATES[c.state]))));
  $('#appointments-empty').hidden = appointments.length > 0;
  fill($('#appointment-list'), appointments.map((a) => h('li', {}, h('div', { class: 'grow' }, appointmentSummary(a)))));
}

function appointmentSummary(appointment) {
  const slot = appointment.slots.find((s) => s.id === appointment.confirmed_slot_id);
  if (appointment.state === 'confirmed' && slot) return `Confirmed: ${slotWords(slot)}`;
  if (appointment.state === 'declined') return `You declined the times proposed on ${words.when(appointment.created_at)}.`;
  return `Proposed: ${appointment.slots.length} time(s) to choose from`;
}

function slotWords(slot) {
  const kind = slot.kind === 'video' ? 'Video call' : 'In person';
  return `${words.when(slot.starts_at)}, ${slot.minutes} min, ${kind}${slot.location ? ` — ${slot.location}` : ''}`;
}

// ---- new consultation ----

function showNew() {
  showOnly('.view', $('#view-new'));
  $('#new-description').focus();
}

// ---- the case page ----

function leaveCase() {
  if (!currentCase) return;
  if (currentCase.chat) currentCase.chat.destroy();
  currentCase = null;
}

async function showCase(id) {
  if (!currentCase || currentCase.id !== id) {
    leaveCase();
    currentCase = { id, consultation: null, chat: null };
  }
  showOnly('.view', $('#view-case'));
  const consultation = await session.get(`/api/v1/consultations/${id}`);
  renderCase(consultation);
  renderPhotos(id);
  renderAppointments(id).catch(showPageError);
}

function renderCase(consultation) {
  if (!currentCase || currentCase.id !== consultation.id) return;
  currentCase.consultation = consultation;
  const status = $('#case-status');
  status.textContent = words.STATES[consultation.state];
  status.className = `status status-${consultation.state}`;
  const facts = [
    words.fact('Body site', words.BODY_SITES[consultation.body_site] || consultation.body_site),
    words.fact('Opened', words.when(consultation.created_at)),
  ];
  if (consultation.state === 'waiting' && consultation.queue) {
    facts.push(words.fact('Place in queue', String(consultation.queue.position)),
      words.fact('Estimated wait', words.duration(consultation.queue.estimated_wait_seconds)));
  }
  fill($('#case-facts'), facts);
  fill($('#case-triage'),
    h('p', { class: 'guidance' }, words.bandChip(consultation.urgency, false), ' ',
      consultation.explanation ? consultation.explanation.patient_words : words.patientGuidance(consultation)),
    consultation.awaiting_score ? h('p', { class: 'muted' }, 'Your photos are being checked.') : null,
    words.screeningAid());
  const outcome = $('#case-outcome');
  outcome.hidden = consultation.state !== 'resolved';
  if (consultation.state === 'resolved') {
    fill(outcome, h('div', { class: 'notice' }, h('h2', {}, 'The doctor\'s conclusion'),
      h('p', { class: 'guidance' }, words.OUTCOMES[consultation.outcome] || consultation.outcome),
      consultation.outcome_note ? h('p', {}, consultation.outcome_note) : null));
  }
  const open = consultation.state === 'waiting' || consultation.state === 'active';
  $('#case-cancel').hidden = !open;
  $('#case-add-photos').hidden = !open;
  renderChat(consultation);
}

function renderChat(consultation) {
  const writable = consultation.state === 'active';
  const note = consultation.state === 'waiting'
    ? 'You can chat as soon as a doctor takes your consultation.'
    : 'This consultation is closed; the conversation stays here for you to read.';
  if (!currentCase.chat) {
    currentCase.chat = new ChatView({ realtime, session, consultationId: consultation.id, container: $('#case-chat'),
      otherLabel: 'The doctor', writable, readOnlyNote: note, maxChars: config.chat.max_message_chars });
  } else {
    currentCase.chat.setWritable(writable, note);
  }
}

async function renderPhotos(consultationId) {
  const grid = $('#case-photo-grid');
  try {
    const { photos } = await session.get(`/api/v1/consultations/${consultationId}/photos`);
    const tiles = photos.map((photo) => {
      const img = h('img', { alt: `Photo of ${words.BODY_SITES[photo.body_site] || 'the spot'}` });
      session.blob(`/api/v1/photos/${photo.id}/thumbnail`).then((blob) => { img.src = URL.createObjectURL(blob); })
        .catch(() => {});
      const advice = photo.quality && photo.quality.advice.length
        ? h('div', { class: 'warn small' }, `A clearer photo would help: ${photo.quality.advice.join('; ')}.`) : null;
      return h('div', { class: 'photo-tile' }, img, h('div', { class: 'muted' }, photoStatus(photo)), advice);
    });
    fill(grid, tiles.length ? tiles : h('p', { class: 'muted' }, 'No photos yet.'));
  } catch (error) {
    fill(grid, h('p', { class: 'muted' }, error.message));
  }
}

function photoStatus(photo) {
  if (photo.status === 'failed') return 'Could not be checked';
  if (photo.status === 'scored') return 'Checked';
  return 'Being checked…';
}

async function renderAppointments(consultationId) {
  const { appointments } = await session.get('/api/v1/appointments');
  const mine = appointments.filter((a) => a.consultation_id === consultationId);
  $('#case-appointments-card').hidden = mine.length === 0;
  fill($('#case-appointments'), mine.map(appointmentCard));
}

function appointmentCard(appointment) {
  if (appointment.state !== 'proposed') {
    return h('p', { class: 'notice' }, appointmentSummary(appointment));
  }
  const choices = appointment.slots.map((slot, index) => h('label', { class: 'check' },
    h('input', { type: 'radio', name: `slot-${appointment.id}`, value: slot.id, checked: index === 0 }), slotWords(slot)));
  const form = h('form', {},
    h('fieldset', {}, h('legend', {}, 'Your doctor proposes a follow-up. Choose a time:'), choices),
    h('p', { class: 'form-error', role: 'alert', hidden: true }),
    h('div', { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, 'Confirm this time'),
      h('button', { type: 'button', class: 'danger', onclick: () => answerAppointment(form, appointment, null) }, 'None of these suit me')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    answerAppointment(form, appointment, formValues(form)[`slot-${appointment.id}`]);
  });
  return form;
}

function answerAppointment(form, appointment, slotId) {
  busy(form, async () => {
    try {
      if (slotId) await session.post(`/api/v1/appointments/${appointment.id}/confirm`, { slot_id: slotId });
      else await session.post(`/api/v1/appointments/${appointment.id}/decline`, {});
      await renderAppointments(appointment.consultation_id);
    } catch (error) {
      showFormError(form, error);
    }
  });
}

// ---- live updates ----

realtime.on('consultation:updated', ({ consultation }) => {
  if (currentCase && currentCase.id === consultation.id) {
    renderCase(consultation);
  }
});
realtime.on('queue:position', (event) => {
  const consultation = currentCase && currentCase.consultation;
  if (!consultation || consultation.id !== event.consultation_id || consultation.state !== 'waiting') return;
  renderCase({ ...consultation, queue: { position: event.position, estimated_wait_seconds: event.estimated_wait_seconds } });
  // A score landing moves the queue; no other event says so to the patient, so fetch the band then.
  if (consultation.awaiting_score) {
    session.get(`/api/v1/consultations/${consultation.id}`).then((fresh) => {
      renderCase(fresh);
      if (!fresh.awaiting_score) renderPhotos(fresh.id);
    }).catch(showPageError);
  }
});
realtime.on('appointment:updated', ({ appointment }) => {
  if (currentCase && currentCase.id === appointment.consultation_id) renderAppointments(appointment.consultation_id).catch(showPageError);
});
// After a network drop, refetch the case: its state may have moved while we were away.
realtime.onResync(() => { if (currentCase) showCase(currentCase.id).catch(showPageError); });

// ---- start ----

setupNewConsultation(session, config, go);
$('#new-consultation').addEventListener('click', () => go('#/new'));
$('#case-back').addEventListener('click', () => go('#/'));
$('#case-photos').addEventListener('change', async (event) => {
  const files = [...event.target.files];
  event.target.value = '';
  const { id, consultation } = currentCase;
  for (const file of files) {
    try {
      await uploadPhoto(session, id, await preparePhoto(file, limits), { body_site: consultation.body_site }, () => {});
    } catch (error) {
      fill($('#case-photo-grid'), h('p', { class: 'form-error' }, error.message));
    }
  }
  renderPhotos(id);
});
$('#case-cancel').addEventListener('click', () => {
  if (!confirm('Cancel this consultation? A doctor will no longer see it.')) return;
  session.post(`/api/v1/consultations/${currentCase.id}/cancel`, {}).then(renderCase).catch(showPageError);
});
$('#sign-out').addEventListener('click', () => session.signOut());
session.onSignedOut(() => { leaveCase(); realtime.disconnect(); showSignIn(); });
window.addEventListener('hashchange', () => route());
setupSignIn(session, signedIn);

session.restore()
  .then((restored) => (restored ? signedIn() : showSignIn()))
  .catch(() => showSignIn());
