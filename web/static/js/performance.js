// The performance page: how triage does on this clinic's confirmed cases (per model version and photo kind),
// the sensitivity alert, and the biopsies waiting for a histopathology result (entered here).

import { Session } from '/static/client/src/session.js';  // sign-in only: no Socket.IO on this page
import { $, h, fill, showOnly, onSubmit } from './dom.js';
import { bandLabel, loadBands, when } from './words.js';
import { FINDINGS, WORKING_DIAGNOSES } from './diagnoses.js';
import { reliabilityPlot } from './performance_plots.js';
import { setupSignInForm } from './signin.js';

// The console's session: a doctor or admin who opens this page from the console is already signed in.
const session = new Session({ storage: sessionStorage, storageKey: 'skindoc.console.refresh' });

const percent = (value) => (value === null || value === undefined ? '–' : `${(100 * value).toFixed(1)} %`);
const interval = (ci) => (ci ? ` (${percent(ci[0])} – ${percent(ci[1])})` : '');
const minutes = (seconds) => (seconds === null ? '–' : `${Math.round(seconds / 60)} min`);

function proportionText(p) {
  return p.trials ? `${percent(p.value)}${interval(p.ci95)}, ${p.successes} of ${p.trials}` : 'no cases';
}

function aucText(auc) {
  return auc.value === null ? 'needs both kinds of case'
    : `${auc.value.toFixed(3)}${auc.ci95 ? ` (${auc.ci95[0].toFixed(3)} – ${auc.ci95[1].toFixed(3)})` : ''}`;
}

function figureRow(label, figures) {
  const { sensitivity, specificity } = figures.urgent_band;
  return h('tr', { dataset: { kind: label } },
    h('th', { scope: 'row' }, label), h('td', {}, String(figures.cases)), h('td', {}, String(figures.malignant)),
    h('td', { class: 'auc' }, aucText(figures.auc)), h('td', { class: 'sensitivity' }, proportionText(sensitivity)),
    h('td', { class: 'specificity' }, proportionText(specificity)),
    h('td', {}, figures.reliability.ece === null ? '–' : figures.reliability.ece.toFixed(3)));
}

function versionCard(version) {
  const rows = [figureRow('all photos', version.all),
    ...Object.entries(version.by_photo_kind).map(([kind, figures]) => figureRow(kind, figures))];
  return h('section', { class: 'card version', dataset: { version: version.model_version } },
    h('h2', {}, `Model ${version.model_version}`),
    h('div', { class: 'table-scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Photos', 'Confirmed cases', 'Malignant', 'AUC (95 % CI)',
        'Urgent band: sensitivity', 'Urgent band: specificity', 'ECE'].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows))),
    h('figure', { class: 'plot' }, reliabilityPlot(version.all.reliability.bins, `Reliability, model ${version.model_version}`),
      h('figcaption', { class: 'muted small' }, 'Reliability: dots on the diagonal mean the score is calibrated here.')));
}

function renderAlert(alert) {
  const banner = $('#sensitivity-alert');
  banner.hidden = !alert.alert;
  banner.textContent = alert.alert
    ? `Alert: the urgent band caught ${alert.caught} of the last ${alert.considered} confirmed malignant lesions `
      + `(${percent(alert.sensitivity)}), below the model card's ${percent(alert.reference)} by more than its interval `
      + `(lower end ${percent(alert.reference_lower)}). Review the model's calibration.`
    : '';
  $('#alert-status').textContent = alert.evaluated
    ? `Last ${alert.considered} confirmed malignant lesions: ${alert.caught} in the urgent band (${percent(alert.sensitivity)}); `
      + `model card ${percent(alert.reference)}, alert below ${percent(alert.reference_lower)}.`
    : `The sensitivity check starts after ${alert.window} confirmed malignant lesions (${alert.considered} so far).`;
}

async function loadPerformance() {
  const body = await session.get('/api/v1/outcomes/performance');
  $('#performance-note').textContent = body.note;
  $('#generated-at').textContent = `Computed ${when(body.generated_at)} from ${body.confirmed_cases} confirmed cases.`;
  renderAlert(body.alert);
  $('#no-confirmed').hidden = body.versions.length > 0;
  fill($('#versions'), body.versions.map(versionCard));
  fill($('#queue-rows'), body.queue.map((q) => h('tr', {},
    h('td', {}, q.model_version || 'unscored'), h('td', {}, String(q.malignant_cases)),
    h('td', { class: 'waited' }, String(q.waited_in_lower_band)), h('td', { class: 'by-band' }, Object.entries(q.by_band).map(([band, n]) => `${bandLabel(band)}: ${n}`).join(', ')),
    h('td', {}, minutes(q.median_wait_seconds)), h('td', {}, minutes(q.max_wait_seconds)))));
}

function resultForm(item) {
  const today = new Date().toISOString().slice(0, 10);
  const form = h('form', { class: 'row histopathology-form', novalidate: true },
    h('label', {}, 'Histopathology', h('select', { name: 'diagnosis', required: true }, h('option', { value: '' }, 'Choose…'),
      Object.entries(FINDINGS).map(([value, label]) => h('option', { value }, label)))),
    h('label', { class: 'switch' }, h('input', { type: 'checkbox', name: 'malignant' }), 'Malignant (for “other”)'),
    h('label', {}, 'Reported on', h('input', { type: 'date', name: 'reported_on', required: true, value: today, max: today })),
    h('label', { class: 'grow' }, 'Note', h('input', { type: 'text', name: 'note', maxlength: 4000 })),
    h('p', { class: 'form-error', role: 'alert', hidden: true }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary small' }, 'Save result')));
  onSubmit(form, async (values) => {
    if (values.diagnosis !== 'other') delete values.malignant;
    await session.post(`/api/v1/consultations/${item.consultation_id}/histopathology`, values);
    await Promise.all([loadAwaiting(), loadPerformance()]);
  });
  return form;
}

async function loadAwaiting() {
  const { cases } = await session.get('/api/v1/outcomes/awaiting-histopathology');
  $('#awaiting-empty').hidden = cases.length > 0;
  fill($('#awaiting'), cases.map((item) => h('li', { class: 'awaiting-case', dataset: { consultation: item.consultation_id } },
    h('div', { class: 'grow' },
      h('div', { class: 'title' }, `Case ${item.consultation_id.slice(0, 8)}, resolved ${when(item.closed_at)}`),
      h('div', { class: 'muted small' }, `Working diagnosis: ${WORKING_DIAGNOSES[item.working_diagnosis] || item.working_diagnosis}`),
      resultForm(item)))));
}

function showError(error) {
  const box = $('#performance-error');
  box.hidden = !error;
  box.textContent = error ? error.message : '';
}

async function signedIn() {
  const user = await session.loadUser();
  $('#who').textContent = user.name;
  $('#who').hidden = false;
  $('#sign-out').hidden = false;
  showOnly('.view', $('#view-performance'));
  showError(null);
  try {
    await loadBands(session);
    await Promise.all([loadPerformance(), loadAwaiting()]);
  } catch (error) {
    showError(error);
  }
}

function signedOut() {
  $('#who').hidden = true;
  $('#sign-out').hidden = true;
  showOnly('.view', $('#view-signin'));
}

setupSignInForm(session, signedIn);
$('#refresh').addEventListener('click', () => loadPerformance().then(() => showError(null), showError));
$('#sign-out').addEventListener('click', async () => { await session.signOut(); });
session.onSignedOut(signedOut);
session.restore().then((restored) => (restored ? signedIn() : signedOut()), signedOut);
