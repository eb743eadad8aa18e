// The new-consultation form: the checklist, photos checked and downscaled here before upload (with a retake
// hint), and a send that can be retried without opening a second case.

import { $, h, fill, formValues, showFormError, busy } from './dom.js';
import { preparePhoto, uploadPhoto } from './photos.js';
import { checkPhoto } from './photo_check.js';
import * as words from './words.js';

let draftPhotos = [];  // { prepared, tile, done }
let draftConsultationId = null;  // set once created, so a retry uploads photos instead of opening a second case

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

// Selections still being decoded and downscaled: a "Send" waits for them, so it never leaves a photo behind.
const preparing = new Set();

async function addDraftPhotos(files, config) {
  const adding = prepareDraftPhotos(files, config);
  preparing.add(adding);
  let added;
  try {
    added = await adding;
  } finally {
    preparing.delete(adding);
  }
  // The quality checks run after the photos joined the draft: a "Send" does not wait for them.
  for (const photo of added) {
    try {
      const advice = await checkPhoto(photo.prepared.blob, config.quality);
      if (draftPhotos.includes(photo) && !photo.done) showRetakeAdvice(photo, advice);
    } catch (error) {
      showFormError($('#form-new'), error);
    }
  }
}

async function prepareDraftPhotos(files, config) {
  const limits = config.photos;
  const form = $('#form-new');
  const added = [];
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
      draftPhotos.push(photo);
      $('#new-photo-grid').append(photo.tile);
      added.push(photo);
    } catch (error) {
      showFormError(form, error);
    }
  }
  return added;
}

async function uploadDraftPhotos(session, consultationId, bodySite, tag) {
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

async function submitNew(event, session, config, go) {
  event.preventDefault();
  const form = $('#form-new');
  const values = formValues(form);
  await busy(form, async () => {
    showFormError(form, null);
    try {
      await Promise.all(preparing);
      if (!draftConsultationId) {
        if (!draftPhotos.length) throw Object.assign(new Error('Add at least one photo of the spot.'), { field: null });
        const symptoms = { duration: values.duration };
        for (const item of config.checklist) symptoms[item.key] = values[item.key];
        const created = await session.post('/api/v1/consultations',
          { description: values.description, body_site: values.body_site, symptoms });
        draftConsultationId = created.id;
      }
      const failures = await uploadDraftPhotos(session, draftConsultationId, values.body_site, values.photo_kind);
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

/** Wires the form; `go(hash)` moves to another page of the app (the new case's, on success). */
export function setupNewConsultation(session, config, go) {
  for (const [value, label] of Object.entries(words.BODY_SITES)) $('#new-site').append(h('option', { value }, label));
  for (const item of config.checklist || []) {
    $('#new-checklist').append(h('label', { class: 'check' }, h('input', { type: 'checkbox', name: item.key }), ` ${item.question}`));
  }
  $('#new-cancel').addEventListener('click', () => { resetNew(); go('#/'); });
  $('#form-new').addEventListener('submit', (event) => submitNew(event, session, config, go));
  $('#new-photos').addEventListener('change', (event) => { addDraftPhotos([...event.target.files], config); event.target.value = ''; });
}
