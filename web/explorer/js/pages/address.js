// An address: what it has sent, its posts, its aggregates (current values), its files (with
// download) and its programs (with their /vm link). Each list is paged on its own.

import { h, link, paths, shortSpan, timeCell, dateTime, bytes, facts, section, notice } from '../dom.js';
import { getJson, query } from '../api.js';
import { jsonBlock, oneLine } from '../json.js';
import { pager } from '../table.js';

const PER_PAGE = 10;
const AGGREGATE_KEYS_SHOWN = 50;
const AGGREGATE_CHARS = 4000;
const CHIPS_SHOWN = 100;

export async function address(main, address) {
  document.title = `Address ${address} · raleph explorer`;
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Address')),
    h('p', { class: 'mono wrap', id: 'address' }, address));
  const stats = await getJson(`/api/v0/addresses/stats.json?${query({ addresses: address })}`);
  const counts = stats?.data?.[address];
  main.append(section('Messages', counts
    ? facts([
      ['All', link(paths.messages({ addresses: address }), counts.messages.toLocaleString())],
      ...['post', 'aggregate', 'store', 'forget', 'program', 'instance'].map((type) => [
        type[0].toUpperCase() + type.slice(1),
        counts[type] ? link(paths.messages({ addresses: address, msgTypes: type.toUpperCase() }), counts[type].toLocaleString()) : '0',
      ]),
    ])
    : notice('This address has sent no message this node holds.')));
  const parts = [posts, aggregates, files, programs, words];
  // Each part fills its own card, so a slow or failing one does not hold the others back.
  await Promise.all(parts.map(async (part) => {
    const card = h('section', { class: 'card' });
    main.append(card);
    try {
      await part(card, address);
    } catch (error) {
      card.append(notice(error.message, 'error'));
    }
  }));
}

// Renders page `n` of a list into `body`, with its pager, whenever the pager is used.
function paged(card, title, load) {
  const body = h('div');
  card.append(h('h2', {}, title), body);
  const show = async (page) => {
    const { rows, total, empty } = await load(page);
    const shown = [rows].flat();
    body.replaceChildren(...(shown.length ? shown : [notice(empty)]));
    if (total > PER_PAGE) body.append(pager({ page, perPage: PER_PAGE, total, onPage: show }));
  };
  return show(1);
}

function table(columns, rows) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows)));
}

async function posts(card, address) {
  await paged(card, 'Posts', async (page) => {
    const answer = await getJson(`/api/v1/posts.json?${query({ addresses: address, pagination: PER_PAGE, page })}`);
    const list = answer.posts ?? [];
    return {
      total: answer.pagination_total ?? 0,
      empty: 'No posts.',
      rows: list.length ? table(['Updated', 'Type', 'Post', 'Channel', 'Content'], list.map((post) => h('tr', {},
        h('td', {}, h('span', { title: dateTime(post.last_updated) }, dateTime(post.last_updated))),
        h('td', {}, post.original_type ? link(paths.messages({ contentTypes: post.original_type }), post.original_type) : '—'),
        h('td', {}, link(paths.message(post.original_item_hash ?? post.item_hash), shortSpan(post.original_item_hash ?? post.item_hash))),
        h('td', {}, post.channel ? link(paths.messages({ channels: post.channel }), post.channel) : '—'),
        h('td', { class: 'preview' }, oneLine(post.content))))) : [],
    };
  });
}

async function aggregates(card, address) {
  card.append(h('h2', {}, 'Aggregates'));
  const answer = await getJson(`/api/v0/aggregates/${encodeURIComponent(address)}.json?with_info=true`, { missingIsNull: true });
  const data = answer?.data ?? {};
  const keys = Object.keys(data);
  if (keys.length === 0) {
    card.append(notice('No aggregates.'));
    return;
  }
  for (const key of keys.slice(0, AGGREGATE_KEYS_SHOWN)) {
    const info = answer.info?.[key];
    card.append(h('div', { class: 'aggregate' },
      h('h3', {}, h('span', { class: 'mono' }, key),
        info?.last_update_item_hash ? [' · updated by ', link(paths.message(info.last_update_item_hash), shortSpan(info.last_update_item_hash))] : null),
      jsonBlock(data[key], AGGREGATE_CHARS)));
  }
  if (keys.length > AGGREGATE_KEYS_SHOWN) {
    card.append(notice(`${keys.length - AGGREGATE_KEYS_SHOWN} more keys: see /api/v0/aggregates/${address}.json`));
  }
}

async function files(card, address) {
  await paged(card, 'Files', async (page) => {
    const answer = await getJson(`/api/v0/addresses/${encodeURIComponent(address)}/files?${query({ pagination: PER_PAGE, page })}`);
    const list = answer.files ?? [];
    return {
      total: answer.pagination_total ?? 0,
      empty: 'No files.',
      rows: list.length ? [
        h('p', { class: 'muted' }, `${bytes(answer.total_size)} in all.`),
        table(['Stored', 'File', 'Size', 'Message', ''], list.map((file) => h('tr', {},
          h('td', {}, dateTime(file.created)),
          h('td', {}, shortSpan(file.file_hash)),
          h('td', {}, bytes(file.size)),
          h('td', {}, file.item_hash ? link(paths.message(file.item_hash), shortSpan(file.item_hash)) : '—'),
          h('td', {}, link(paths.raw(file.file_hash), 'Download'))))),
      ] : [],
    };
  });
}

async function programs(card, address) {
  await paged(card, 'Programs', async (page) => {
    const answer = await getJson(`/api/v0/messages.json?${query({ addresses: address, msgTypes: 'PROGRAM,INSTANCE', pagination: PER_PAGE, page })}`);
    const list = answer.messages ?? [];
    return {
      total: answer.pagination_total ?? 0,
      empty: 'No programs.',
      rows: list.length ? table(['Time', 'Type', 'Message', 'Runs at'], list.map((m) => h('tr', {},
        h('td', {}, timeCell(Number(m.time))),
        h('td', {}, m.type),
        h('td', {}, link(paths.message(m.item_hash), shortSpan(m.item_hash))),
        h('td', {}, m.type === 'PROGRAM' ? link(paths.vm(m.item_hash), h('span', { class: 'mono' }, `/vm/${m.item_hash.slice(0, 12)}…`)) : '—')))) : [],
    };
  });
}

// The channels it writes in and the post types it uses, each a link to those messages.
async function words(card, address) {
  card.append(h('h2', {}, 'Channels and post types'));
  const [channels, postTypes] = await Promise.all([
    getJson(`/api/v0/addresses/${encodeURIComponent(address)}/channels`, { missingIsNull: true }),
    getJson(`/api/v0/addresses/${encodeURIComponent(address)}/post_types`, { missingIsNull: true }),
  ]);
  const chips = (list, filter) => (Array.isArray(list) && list.length
    ? h('p', { class: 'chips' }, list.slice(0, CHIPS_SHOWN).map((word) => link(paths.messages({ addresses: address, [filter]: String(word) }), h('span', { class: 'chip' }, String(word)))))
    : h('p', { class: 'muted' }, 'None.'));
  card.append(facts([
    ['Channels', chips(channels?.channels, 'channels')],
    ['Post types', chips(postTypes?.post_types, 'contentTypes')],
  ]));
}
