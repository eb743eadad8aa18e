// One active consultation's panel in the doctor console: the case and why it has its band, the photos with the
// model's probabilities and saliency overlay, the chat, follow-up appointments, resolution and hand-over.

import { h, fill, onSubmit } from './dom.js';
import { ChatView } from './chat.js';
import * as words from './words.js';
import { WORKING_DIAGNOSES } from './diagnoses.js';

/** A protected photo as an object URL for an <img> (which cannot send the Authorization header itself). */
export const imageUrl = async (session, path) => URL.createObjectURL(await session.blob(path));

/**
 * Fills `entry.panel` for `entry.consultation`. `desk` is what the console shares with it: session, realtime,
 * maxChars (the longest message), closeCase(id) (after a resolution or hand-over), colleagues() (the doctors
 * the case may be handed over to).
 */
export function buildCasePanel(entry, desk) {
  const { consultation, panel } = entry;
  entry.desk = desk;
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
  entry.chat = new ChatView({ realtime: desk.realtime, session: desk.session, consultationId: consultation.id,
    container: chatBox, otherLabel: 'The patient', writable: true, maxChars: desk.maxChars });
  loadPhotos(entry);
  loadAppointments(entry);
}

export function renderCaseHeader(entry) {
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
  const { session } = entry.desk;
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
      main.src = await imageUrl(session, photo.image_url);
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
        overlay.src = await imageUrl(session, current.saliency_url);
        overlay.dataset.photo = current.id;
      }
      overlay.hidden = !toggle.checked;
    });
    const strip = photos.map((photo) => {
      const img = h('img', { class: 'thumb', alt: `Photo ${photo.tag || ''}`.trim() });
      imageUrl(session, photo.thumbnail_url).then((url) => { img.src = url; }).catch(() => {});
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
  onSubmit(form, async () => {
    const proposed = [...slots.querySelectorAll('.slot-row')].map((row) => ({
      starts_at: new Date(row.querySelector('[name=starts_at]').value).toISOString(),
      minutes: Number(row.querySelector('[name=minutes]').value),
      kind: row.querySelector('[name=kind]').value,
      location: row.querySelector('[name=location]').value.trim(),
    }));
    await entry.desk.realtime.call('appointment:propose', { consultation_id: entry.consultation.id, slots: proposed });
    await loadAppointments(entry);
  });
  return form;
}

export async function loadAppointments(entry) {
  const { appointments } = await entry.desk.session.get('/api/v1/appointments');
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
  onSubmit(form, async (values) => {
    await entry.desk.realtime.call('consultation:resolve', { consultation_id: entry.consultation.id, ...values });
    entry.desk.closeCase(entry.consultation.id);
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
    entry.desk.colleagues().map((d) =>
      h('option', { value: d.doctor_id }, `Doctor ${d.doctor_id.slice(0, 8)} (${d.availability}, ${d.active}/${d.capacity})`)));
  target.addEventListener('focus', refreshTargets);
  refreshTargets();
  onSubmit(form, async ({ reason, to_doctor_id: to }) => {
    await entry.desk.realtime.call('consultation:transfer',
      { consultation_id: entry.consultation.id, reason, ...(to ? { to_doctor_id: to } : {}) });
    entry.desk.closeCase(entry.consultation.id);
  });
  return form;
}
