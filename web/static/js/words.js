// Plain words for the codes the API uses, and small formatting helpers shared by both apps.

import { h } from './dom.js';

export const BODY_SITES = {
  scalp: 'Scalp', face: 'Face', ear: 'Ear', neck: 'Neck', chest: 'Chest', back: 'Back', abdomen: 'Abdomen',
  arm: 'Arm', hand: 'Hand', leg: 'Leg', foot: 'Foot', genital: 'Genital area', other: 'Somewhere else',
};

export const DURATIONS = { days: 'days', weeks: 'weeks', months: 'months', years: 'years' };

export const STATES = { waiting: 'Waiting for a doctor', active: 'With a doctor', resolved: 'Resolved', cancelled: 'Cancelled' };

export const OUTCOMES = {
  reassure: 'Reassurance: nothing to worry about',
  monitor: 'Keep an eye on it',
  in_person_visit: 'Book an in-person visit',
  urgent_referral: 'Urgent referral to a specialist',
};

// The urgency bands and their words come from the server (GET /api/v1/triage/bands), where they are defined
// once with the checkpoint's thresholds; until they arrive a band shows by its code.
let BANDS = {};

/** Fetches the bands once per page, after sign-in (the endpoint needs a signed-in user). */
export async function loadBands(session) {
  const { bands } = await session.get('/api/v1/triage/bands');
  BANDS = Object.fromEntries(bands.map((band) => [band.name, band]));
}

export const SCREENING_AID = 'Screening aid, not a diagnosis: only a doctor can tell you what this is.';

export function screeningAid() {
  return h('p', { class: 'screening-aid' }, SCREENING_AID);
}

/** A band's words (its code until the bands have arrived). */
export function bandLabel(name) {
  return BANDS[name]?.label || name;
}

/** The band as a labelled chip (words, not colour alone). */
export function bandChip(urgency, awaitingScore) {
  if (awaitingScore || !urgency) return h('span', { class: 'band band-awaiting' }, 'Awaiting score');
  return h('span', { class: `band band-${urgency}` }, bandLabel(urgency));
}

export function patientGuidance(consultation) {
  if (consultation.awaiting_score) return 'Your photos are being checked. This takes a few seconds.';
  // What a patient should understand from the band, without numbers; the second part only while waiting.
  const { finding = '', while_waiting: whileWaiting = '' } = BANDS[consultation.urgency] || {};
  return consultation.state === 'waiting' ? `${finding} ${whileWaiting}` : finding;
}

/** How long the patient has had the spot, in words. */
export function durationWords(symptoms = {}) {
  return symptoms.duration ? `present for ${DURATIONS[symptoms.duration] || symptoms.duration}` : 'duration not given';
}

/**
 * Why a case has its band, as the server explains it ("checklist 5: size, colour, oozing → urgent", "photo score
 * 0.42 (urgent), dermoscopic, in range"), one line each.
 */
export function reasonLines(item) {
  const lines = (item.explanation && item.explanation.reasons) || [];
  return h('ul', { class: 'reasons' }, lines.map((line) => h('li', {}, line)));
}

/** The photo gate's verdict, always beside the score: trusted ("dermoscopic, in range") or why not. */
export function gateChip(item) {
  if (item.awaiting_score || !item.gate) return null;
  return h('span', { class: item.score_trusted ? 'gate gate-ok' : 'gate gate-untrusted' },
    item.score_trusted ? `score used: ${item.gate.summary}` : `score ${item.gate.summary}`);
}

// HAM10000's diagnostic classes, the classifier's outputs.
export const LESION_CLASSES = {
  akiec: 'Actinic keratosis / intraepithelial carcinoma', bcc: 'Basal cell carcinoma', bkl: 'Benign keratosis',
  df: 'Dermatofibroma', mel: 'Melanoma', nv: 'Melanocytic naevus', vasc: 'Vascular lesion',
};

/** A probability as a percentage, with a decimal where small differences matter (the bands start near 1 %). */
export function percent(p) {
  if (p === null || p === undefined) return '—';
  if (p < 0.001) return '< 0.1 %';
  return p < 0.1 ? `${(p * 100).toFixed(1)} %` : `${Math.round(p * 100)} %`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const minutes = Math.round(seconds / 60);
  if (minutes < 1) return 'under a minute';
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min`;
}

export function when(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function clock(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

export function fact(term, value) {
  return h('div', {}, h('dt', {}, term), h('dd', {}, value));
}
