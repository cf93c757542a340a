// A list of messages filtered as the page's query says (channel, tag, post type, sender, …),
// paged, and followed live on its first page.

import { h, link, paths, notice } from '../dom.js';
import { follow, getJson, query } from '../api.js';
import { messageTable, pager } from '../table.js';

const PER_PAGE = 20;
const MAX_PAGE = 100000;

// The filters of the page's query the explorer passes on to the node, and how it names them.
export const FILTERS = {
  addresses: 'sender',
  owners: 'owner',
  channels: 'channel',
  tags: 'tag',
  contentTypes: 'post type',
  refs: 'reference',
  msgTypes: 'type',
  chains: 'chain',
  hashes: 'item hash',
  contentHashes: 'file hash',
  contentKeys: 'aggregate key',
};

export async function list(main) {
  const params = new URLSearchParams(location.search);
  const filters = {};
  for (const key of Object.keys(FILTERS)) {
    const value = params.get(key);
    if (value) filters[key] = value;
  }
  const page = Math.min(MAX_PAGE, Math.max(1, Number.parseInt(params.get('page') ?? '1', 10) || 1));
  const described = Object.entries(filters).map(([key, value]) => `${FILTERS[key]} ${value}`).join(', ');
  const title = described ? `Messages: ${described}` : 'All messages';
  document.title = `${title} · raleph explorer`;

  const table = messageTable({ limit: page === 1 ? 200 : PER_PAGE, empty: 'No message matches.' });
  const state = h('span', { class: 'live-state' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, title), state), table.element);

  const answer = await getJson(`/api/v0/messages.json?${query({ ...filters, pagination: PER_PAGE, page })}`);
  for (const message of answer.messages ?? []) table.add(message);
  main.append(pager({
    page,
    perPage: PER_PAGE,
    total: answer.pagination_total ?? 0,
    href: (n) => `?${query({ ...filters, page: n })}`,
  }));
  if (page === 1) {
    const stop = follow(`/api/ws0/messages?${query({ ...filters, history: 0 })}`, {
      onFrame: (frame) => {
        for (const message of Array.isArray(frame) ? frame : [frame]) table.add(message, { fresh: true });
      },
      onState: (word) => {
        state.textContent = word === 'live' ? '● live' : 'reconnecting…';
        state.classList.toggle('on', word === 'live');
      },
    });
    addEventListener('pagehide', stop, { once: true });
  } else {
    main.append(notice('New messages appear live on the first page.'));
  }
  if (filters.addresses && !filters.addresses.includes(',')) {
    main.append(h('p', {}, link(paths.address(filters.addresses), 'This address’s posts, aggregates, files and programs →')));
  }
}
