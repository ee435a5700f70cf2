// Small shared pieces of the interface: the html tag, times, download and copy helpers.

import { h } from 'preact';
import htm from 'htm';

/** JSX-like templates without a compile step: html`<p>${text}</p>`. Text is always escaped. */
export const html = htm.bind(h);

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });

/** A time of day in this device's zone, with the day when it is not today. */
export function when(ms) {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? timeFormat.format(d) : `${dayFormat.format(d)} ${timeFormat.format(d)}`;
}

/** The full local date and time with its zone, for a tooltip. */
export function fullTime(ms) {
  return new Date(ms).toString();
}

/** Offers `text` as a file download named `name`. */
export function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  saveUrl(url, name);
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Saves what the (object) URL holds under `name`, as a download. */
export function saveUrl(url, name) {
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

/** Copies text; plain HTTP has no clipboard API, so a hidden text field does it there. */
export async function copy(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) {
    // Fall through to the old way.
  }
  const t = document.createElement('textarea');
  t.value = text;
  t.setAttribute('readonly', '');
  t.style.position = 'fixed';
  t.style.opacity = '0';
  document.body.appendChild(t);
  t.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch (_) {
    ok = false;
  }
  t.remove();
  return ok;
}

/** A notice line: errors in the user's words, or progress. */
export function Notice({ kind = 'info', children }) {
  if (!children) return null;
  return html`<p class=${'notice ' + kind} role=${kind === 'error' ? 'alert' : 'status'}>${children}</p>`;
}
