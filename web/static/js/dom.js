// Building DOM nodes safely: every string becomes a text node, never markup.

/** h('p', {class: 'x', onclick: fn}, 'text', child) — attributes, listeners and children in one call. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  node.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Replaces a node's children with the given nodes or strings (strings as text). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

/** Shows exactly one of the elements matching `selector`. */
export function showOnly(selector, visible) {
  for (const node of $$(selector)) node.hidden = node !== visible;
}

/** The named form fields as a plain object (checkboxes as booleans, multi-valued names as arrays). */
export function formValues(form) {
  const values = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled) continue;
    if (field.type === 'checkbox') values[field.name] = field.checked;
    else if (field.type === 'radio') { if (field.checked) values[field.name] = field.value; }
    else if (field.type !== 'file' && field.type !== 'submit') values[field.name] = field.value.trim();
  }
  return values;
}

/** Shows an error next to a form: the problem's detail, and the offending field marked and focused. */
export function showFormError(form, error) {
  const box = $('.form-error', form);
  for (const field of form.querySelectorAll('[aria-invalid]')) field.removeAttribute('aria-invalid');
  if (!error) { box.hidden = true; fill(box); return; }
  fill(box, error.message);
  box.hidden = false;
  const field = error.field && form.elements.namedItem(error.field);
  if (field && field.focus) { field.setAttribute('aria-invalid', 'true'); field.focus(); }
}

/**
 * On submit, `send(values)` with the form's values: the form is busy meanwhile, and what went wrong is
 * shown in it (an earlier error is cleared first).
 */
export function onSubmit(form, send) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = formValues(form);
    busy(form, async () => {
      try {
        showFormError(form, null);
        await send(values);
      } catch (error) {
        showFormError(form, error);
      }
    });
  });
}

/** Disables a form's submit button while `work` runs, so a double tap sends nothing twice. */
export async function busy(form, work) {
  const buttons = $$('button', form);
  for (const button of buttons) button.disabled = true;
  try { return await work(); } finally { for (const button of buttons) button.disabled = false; }
}
