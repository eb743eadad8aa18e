// The patient app: sign in, open a consultation with photos, follow it live, chat, answer appointments.

import { $, h, fill, showOnly, formValues, showFormError, busy } from './dom.js';
import { Session } from './api.js';
import { Realtime } from './realtime.js';
import { ChatView } from './chat.js';
import { preparePhoto, uploadPhoto } from './photos.js';
import { checkPhoto } from './photo_check.js';
import { setupSignIn, pageConfig } from './signin.js';
import * as words from './words.js';

const session = new Session('patient');
const realtime = new Realtime(session, $('#reconnecting'));
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
  realtime.start();
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

let draftPhotos = [];  // { prepared, tile, done }
let draftConsultationId = null;  // set once created, so a retry uploads photos instead of opening a second case

function showNew() {
  showOnly('.view', $('#view-new'));
  $('#new-description').focus();
}

function resetNew() {
  $('#form-new').reset();
  for (const photo of draftPhotos) URL.revokeObjectURL(photo.previewUrl);
  draftPhotos = [];
  draftConsultationId = null;
  fill($('#new-photo-grid'));
  showFormError($('#form-new'), null);
}

function photoTile(previewUrl, name, onRemove) {
  const status = h('span', { class: 'status-line' }, 'Ready');
  const progress = h('progress', { max: 1, value: 0, 'aria-label': `Upload of ${name}` });
  const tile = h('div', { class: 'photo-tile' },
    previewUrl ? h('img', { src: previewUrl, alt: `Preview of ${name}` }) : h('p', { class: 'muted' }, name),
    progress, h('div', {}, status),
    h('button', { type: 'button', class: 'small link-button', onclick: onRemove, 'aria-label': `Remove ${name}` }, 'Remove'));
  return { tile, progress, status };
}

/** A photo that fails the quality check: say why and how to do better; the patient may retake it or send it. */
function showRetakeAdvice(photo, check) {
  if (!check || !check.problems.length) return;
  photo.status.textContent = `Retake suggested: ${check.advice.join('; ')}. You can still send this one.`;
  photo.status.className = 'warn';
  photo.tile.classList.add('retake');
  photo.tile.append(h('button', {
    type: 'button', class: 'small', onclick: () => { removeDraftPhoto(photo); $('#new-photos').click(); },
  }, 'Retake'));
}

function removeDraftPhoto(photo) {
  URL.revokeObjectURL(photo.previewUrl);
  photo.tile.remove();
  draftPhotos = draftPhotos.filter((other) => other !== photo);
}

async function addDraftPhotos(files) {
  const form = $('#form-new');
  for (const file of files) {
    if (draftPhotos.length >= limits.max_photos) {
      showFormError(form, new Error(`Up to ${limits.max_photos} photos per consultation.`));
      break;
    }
    try {
      const prepared = await preparePhoto(file, limits);
      if (prepared.blob.size > limits.max_upload_bytes) {
        throw new Error(`${file.name} is too large (${Math.round(prepared.blob.size / 1048576)} MB); the limit is ${Math.round(limits.max_upload_bytes / 1048576)} MB.`);
      }
      const previewUrl = prepared.width ? URL.createObjectURL(prepared.blob) : null;
      const photo = { prepared, previewUrl, done: false };
      Object.assign(photo, photoTile(previewUrl, file.name, () => removeDraftPhoto(photo)));
      if (prepared.note) photo.status.textContent = `Ready (${prepared.note})`;
      // Part of the draft before the quality check ends: a "Send" pressed meanwhile must not leave it behind.
      draftPhotos.push(photo);
      $('#new-photo-grid').append(photo.tile);
      const advice = await checkPhoto(prepared.blob, config.quality);
      if (draftPhotos.includes(photo) && !photo.done) showRetakeAdvice(photo, advice);
    } catch (error) {
      showFormError(form, error);
    }
  }
}

async function uploadDraftPhotos(consultationId, bodySite, tag) {
  let failures = 0;
  for (const photo of draftPhotos.filter((p) => !p.done)) {
    photo.status.textContent = 'Uploading…';
    photo.status.className = '';
    try {
      const reply = await uploadPhoto(session, consultationId, photo.prepared, { body_site: bodySite, tag },
        (fraction) => { photo.progress.value = fraction; });
      const warnings = reply.photos.flatMap((stored) => stored.warnings || []);
      photo.done = true;
      photo.progress.value = 1;
      photo.status.textContent = ['Sent.', ...warnings].join(' ');
      photo.status.className = 'ok';
      for (const button of photo.tile.querySelectorAll('button')) button.remove();  // it is on the server now
    } catch (error) {
      failures += 1;
      photo.status.textContent = error.message;
      photo.status.className = 'error';
    }
  }
  return failures;
}

async function submitNew(event) {
  event.preventDefault();
  const form = $('#form-new');
  const values = formValues(form);
  await busy(form, async () => {
    showFormError(form, null);
    try {
      if (!draftConsultationId) {
        if (!draftPhotos.length) throw Object.assign(new Error('Add at least one photo of the spot.'), { field: null });
        const symptoms = { duration: values.duration };
        for (const item of config.checklist) symptoms[item.key] = values[item.key];
        const created = await session.post('/api/v1/consultations',
          { description: values.description, body_site: values.body_site, symptoms });
        draftConsultationId = created.id;
      }
      const failures = await uploadDraftPhotos(draftConsultationId, values.body_site, values.photo_kind);
      if (failures) {
        throw new Error(`${failures} photo(s) did not upload. Your consultation is saved: press "Send to a doctor" to try again, or remove them.`);
      }
      const id = draftConsultationId;
      resetNew();
      go(`#/case/${id}`);
    } catch (error) {
      showFormError(form, error);
    }
  });
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
      otherLabel: 'The doctor', writable, readOnlyNote: note });
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
      session.imageUrl(`/api/v1/photos/${photo.id}/thumbnail`).then((url) => { img.src = url; }).catch(() => {});
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

for (const [value, label] of Object.entries(words.BODY_SITES)) $('#new-site').append(h('option', { value }, label));
for (const item of config.checklist || []) {
  $('#new-checklist').append(h('label', { class: 'check' }, h('input', { type: 'checkbox', name: item.key }), ` ${item.question}`));
}
$('#new-consultation').addEventListener('click', () => go('#/new'));
$('#new-cancel').addEventListener('click', () => { resetNew(); go('#/'); });
$('#case-back').addEventListener('click', () => go('#/'));
$('#form-new').addEventListener('submit', submitNew);
$('#new-photos').addEventListener('change', (event) => { addDraftPhotos([...event.target.files]); event.target.value = ''; });
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
$('#sign-out').addEventListener('click', async () => {
  realtime.stop();
  leaveCase();
  await session.signOut();
});
session.addEventListener('signedout', () => { realtime.stop(); leaveCase(); showSignIn(); });
window.addEventListener('hashchange', () => route());
setupSignIn(session, signedIn);

session.restore()
  .then((restored) => (restored ? signedIn() : showSignIn()))
  .catch(() => showSignIn());
