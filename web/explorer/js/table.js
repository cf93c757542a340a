// Tables of messages, and the pager under lists.

import { h, link, paths, shortSpan, timeCell, badge } from './dom.js';

export const MESSAGE_COLUMNS = ['Time', 'Type', 'Item hash', 'Sender', 'Channel', 'Status'];

// A table whose rows stay ordered by message time, newest first, each message once.
// `limit` rows at most: the oldest go when newer arrive.
export function messageTable({ limit = 100, empty = 'No messages.' } = {}) {
  const body = h('tbody');
  const rows = new Map();
  const emptyRow = h('tr', { class: 'empty' }, h('td', { colspan: MESSAGE_COLUMNS.length }, empty));
  body.append(emptyRow);
  const table = h('table', { class: 'messages' },
    h('thead', {}, h('tr', {}, MESSAGE_COLUMNS.map((c) => h('th', {}, c)))),
    body);

  function add(message, { status = 'processed', fresh = false } = {}) {
    const hash = message?.item_hash;
    if (typeof hash !== 'string' || rows.has(hash)) return;
    emptyRow.remove();
    const time = Number(message.time) || 0;
    const row = messageRow(message, status);
    row.dataset.time = String(time);
    if (fresh) row.classList.add('fresh');
    const after = [...body.children].find((r) => Number(r.dataset.time) < time);
    body.insertBefore(row, after ?? null);
    rows.set(hash, row);
    while (rows.size > limit) {
      const last = body.lastElementChild;
      rows.delete(last.dataset.hash);
      last.remove();
    }
  }

  return { element: h('div', { class: 'table-wrap' }, table), add, size: () => rows.size };
}

function messageRow(message, status) {
  const row = h('tr', {},
    h('td', {}, timeCell(Number(message.time))),
    h('td', {}, h('span', { class: 'type' }, message.type ?? '')),
    h('td', {}, link(paths.message(message.item_hash), shortSpan(message.item_hash))),
    h('td', {}, message.sender ? link(paths.address(message.sender), shortSpan(message.sender, 8, 4)) : ''),
    h('td', {}, message.channel ? link(paths.messages({ channels: message.channel }), message.channel) : '—'),
    h('td', {}, badge(message.status ?? status)));
  row.dataset.hash = message.item_hash;
  return row;
}

// "Previous · Page 2 of 7 · Next"; `href(page)` gives the link of a page, or `onPage(page)`
// is called instead when the list re-renders in place.
export function pager({ page, perPage, total, href, onPage }) {
  const pages = Math.max(1, Math.ceil(total / perPage));
  const target = (n, text) => {
    if (n < 1 || n > pages) return h('span', { class: 'disabled' }, text);
    if (href) return link(href(n), text);
    return h('button', { type: 'button', class: 'linklike', onclick: () => onPage(n) }, text);
  };
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    target(page - 1, '← Previous'),
    h('span', {}, `Page ${page.toLocaleString()} of ${pages.toLocaleString()} · ${total.toLocaleString()} in all`),
    target(page + 1, 'Next →'));
}
