// The search box: an item hash or an address goes straight to its page; other words are
// looked up as a channel, a tag and a post type, with the count of each.

import { h, link, paths, section } from '../dom.js';
import { getJson, query } from '../api.js';

const HEX_HASH = /^[0-9a-fA-F]{64}$/;
const CID = /^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58,})$/;
const EVM_ADDRESS = /^0x[0-9a-fA-F]{40}$/;
// Solana, Substrate, Tezos, NULS, Cosmos and the like: letters and digits without spaces.
const OTHER_ADDRESS = /^([1-9A-HJ-NP-Za-km-z]{32,64}|(tz|KT)[1-3][1-9A-HJ-NP-Za-km-z]{33}|[a-z]{2,12}1[02-9ac-hj-np-z]{38,58})$/;

const WORDS = [
  ['channel', 'channels', 'Channel'],
  ['tag', 'tags', 'Tag'],
  ['post_type', 'contentTypes', 'Post type'],
];

// Where a search goes: `{href}` for one page, or `{words}` when the text could be several things.
export function resolve(kind, text) {
  const q = text.trim();
  switch (kind) {
    case 'hash': return { href: paths.message(HEX_HASH.test(q) ? q.toLowerCase() : q) };
    case 'address': return { href: paths.address(q) };
    case 'channel': return { href: paths.messages({ channels: q }) };
    case 'tag': return { href: paths.messages({ tags: q }) };
    case 'post_type': return { href: paths.messages({ contentTypes: q }) };
    default:
      if (HEX_HASH.test(q)) return { href: paths.message(q.toLowerCase()) };
      if (CID.test(q)) return { href: paths.message(q) };
      if (EVM_ADDRESS.test(q) || OTHER_ADDRESS.test(q)) return { href: paths.address(q) };
      return { words: q };
  }
}

export async function search(main) {
  const params = new URLSearchParams(location.search);
  const text = (params.get('q') ?? '').slice(0, 256);
  const kind = params.get('kind') ?? 'auto';
  const form = document.getElementById('search');
  form.elements.q.value = text;
  form.elements.kind.value = kind;
  document.title = `Search: ${text} · raleph explorer`;
  if (!text.trim()) {
    main.append(h('h1', {}, 'Search'), h('p', {}, 'Type an item hash, an address, a channel, a tag or a post type above.'));
    return;
  }
  const target = resolve(kind, text);
  if (target.href) {
    location.replace(target.href);
    return;
  }
  main.append(h('h1', {}, 'Search: ', h('q', {}, target.words)));
  const counts = await Promise.all(WORDS.map(async ([, filter]) => {
    const answer = await getJson(`/api/v0/messages.json?${query({ [filter]: target.words, pagination: 1 })}`);
    return answer.pagination_total ?? 0;
  }));
  const list = h('ul', { class: 'results' }, WORDS.map(([, filter, label], i) => h('li', {},
    counts[i] > 0
      ? link(paths.messages({ [filter]: target.words }), `${label} “${target.words}”`)
      : h('span', { class: 'muted' }, `${label} “${target.words}”`),
    ` — ${counts[i].toLocaleString()} message${counts[i] === 1 ? '' : 's'}`)));
  main.append(section('Matches', list));
}
