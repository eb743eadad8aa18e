// The sign-in / create-account card shared by the patient app and the doctor console.

import { $, onSubmit, showFormError } from './dom.js';

/** Page settings the server writes into <meta name="skindoc-config"> when it loads the page. */
export function pageConfig() {
  try { return JSON.parse($('meta[name=skindoc-config]').content); } catch { return {}; }
}

function selectTab(tab, others, form, otherForms) {
  tab.setAttribute('aria-selected', 'true');
  for (const other of others) other.setAttribute('aria-selected', 'false');
  form.hidden = false;
  for (const other of otherForms) other.hidden = true;
  form.elements[form.elements[0].type === 'hidden' ? 1 : 0].focus();
}

/** Wires the forms; `onSignedIn` runs after a successful sign-in or sign-up. */
export function setupSignIn(session, onSignedIn) {
  const signIn = $('#form-signin');
  const signUp = $('#form-signup');
  const tabIn = $('#tab-signin');
  const tabUp = $('#tab-signup');
  tabIn.addEventListener('click', () => selectTab(tabIn, [tabUp], signIn, [signUp]));
  tabUp.addEventListener('click', () => selectTab(tabUp, [tabIn], signUp, [signIn]));
  setupSignInForm(session, onSignedIn);
  submitToSession(signUp, (fields) => session.signUp(fields), onSignedIn);
  setupOidc(session, onSignedIn);
}

/** The sign-in form alone, for pages where no account is created (the performance page). */
export function setupSignInForm(session, onSignedIn) {
  submitToSession($('#form-signin'), ({ email, password }) => session.signIn(email, password), onSignedIn);
}

/** On submit, `send(values)`; the form shows what went wrong, or is cleared and `onSignedIn` runs. */
function submitToSession(form, send, onSignedIn) {
  onSubmit(form, async (values) => {
    await send(values);
    form.reset();
    await onSignedIn();
  });
}

/**
 * "Sign in with Google" without any third-party script: a redirect to the provider, which sends the browser
 * back here with an ID token in the URL fragment; the server verifies it and answers with our own tokens.
 */
function setupOidc(session, onSignedIn) {
  const oidc = pageConfig().oidc;
  if (!oidc) return;
  $('.oidc').hidden = false;
  $('#oidc-signin').addEventListener('click', () => {
    const nonce = crypto.randomUUID();
    sessionStorage.setItem('skindoc.oidc.nonce', nonce);
    const url = new URL(oidc.authorization_endpoint);
    url.search = new URLSearchParams({
      client_id: oidc.client_id, response_type: 'id_token', scope: 'openid email profile',
      redirect_uri: location.origin + location.pathname, nonce,
    }).toString();
    location.assign(url.toString());
  });
  const fragment = new URLSearchParams(location.hash.slice(1));
  const idToken = fragment.get('id_token');
  if (!idToken) return;
  history.replaceState(null, '', location.pathname);
  const nonce = sessionStorage.getItem('skindoc.oidc.nonce');
  sessionStorage.removeItem('skindoc.oidc.nonce');
  session.signInWithIdToken(idToken, nonce)
    .then(onSignedIn)
    .catch((error) => showFormError($('#form-signin'), error));
}
