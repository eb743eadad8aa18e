// The admin view: approve doctors waiting for it, search the audit log.

import { $, h, fill, formValues, onSubmit, showFormError } from './dom.js';
import { when } from './words.js';

export function setupAdmin(session) {
  const form = $('#audit-form');
  let nextBefore = null;

  async function loadPending() {
    const { doctors } = await session.get('/api/v1/admin/doctors?status=pending');
    $('#pending-empty').hidden = doctors.length > 0;
    fill($('#pending-doctors'), doctors.map((doctor) => h('li', {},
      h('div', { class: 'grow' }, h('div', { class: 'title' }, doctor.name), h('div', { class: 'muted small' }, doctor.email)),
      h('button', { type: 'button', class: 'primary small', onclick: (event) => approve(event.target, doctor) }, 'Approve'))));
  }

  async function approve(button, doctor) {
    button.disabled = true;
    try {
      await session.post(`/api/v1/admin/doctors/${doctor.id}/approve`, {});
      await loadPending();
    } catch (error) {
      button.disabled = false;
      button.after(h('span', { class: 'form-error' }, error.message));
    }
  }

  async function search(append) {
    const values = formValues(form);
    const query = new URLSearchParams({ limit: '50' });
    for (const [name, value] of Object.entries(values)) {
      if (!value) continue;
      query.set(name, name === 'since' ? new Date(value).toISOString() : value);
    }
    if (append && nextBefore) query.set('before', String(nextBefore));
    const { entries, next_before: before } = await session.get(`/api/v1/admin/audit?${query}`);
    nextBefore = before;
    const rows = entries.map((entry) => h('tr', {},
      h('td', {}, String(entry.id)), h('td', {}, when(entry.occurred_at)),
      h('td', {}, `${entry.actor_role || 'system'} ${entry.actor_id ? entry.actor_id.slice(0, 8) : ''}`),
      h('td', {}, entry.action), h('td', {}, `${entry.subject_type} ${entry.subject_id || ''}`),
      h('td', { class: 'details' }, JSON.stringify(entry.details))));
    if (append) $('#audit-rows').append(...rows); else fill($('#audit-rows'), rows);
    $('#audit-more').hidden = !nextBefore;
  }

  onSubmit(form, () => search(false));
  $('#audit-more').addEventListener('click', () => search(true).catch((error) => showFormError(form, error)));
  loadPending().catch((error) => fill($('#pending-doctors'), h('li', { class: 'form-error' }, error.message)));
  search(false).catch((error) => showFormError(form, error));
}
