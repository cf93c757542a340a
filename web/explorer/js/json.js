// Showing JSON written by anyone: as text, indented, and cut at a length a page stays quick with.

import { h } from './dom.js';

// Characters shown before "Show all".
export const PREVIEW_CHARS = 20000;

export function jsonBlock(value, limit = PREVIEW_CHARS) {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  const pre = h('pre', { class: 'json' });
  if (text.length <= limit) {
    pre.textContent = text;
    return pre;
  }
  pre.textContent = text.slice(0, limit);
  const more = h('button', {
    type: 'button',
    onclick: () => {
      pre.textContent = text;
      note.remove();
    },
  }, `Show all ${text.length.toLocaleString()} characters`);
  const note = h('p', { class: 'truncated' }, `Shown: the first ${limit.toLocaleString()} characters. `, more);
  return h('div', {}, pre, note);
}

// One line of a value, for tables.
export function oneLine(value, chars = 100) {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? '';
  return text.length > chars ? `${text.slice(0, chars)}…` : text;
}
