// A message: its envelope, content, status (with the error when rejected), confirmations and
// anchoring proof, the amends of a post, and the FORGET that removed it.

import { h, link, paths, shortSpan, dateTime, bytes, badge, facts, section, notice } from '../dom.js';
import { getJson, query } from '../api.js';
import { jsonBlock } from '../json.js';
import { messageTable } from '../table.js';

// The reference's rejection codes (a message's `error_code`).
const ERROR_CODES = {
  '-1': 'internal error', 0: 'invalid format', 1: 'invalid signature', 2: 'permission denied',
  3: 'content unavailable', 4: 'file unavailable', 5: 'balance insufficient', 6: 'credit insufficient',
  100: 'amend without a target', 101: 'amended post not found', 102: 'amend of an amend',
  200: 'store reference not found', 201: 'store update of an update', 202: 'invalid payment method',
  300: 'program reference not found', 301: 'volume not found', 302: 'amend not allowed',
  303: 'update of an update', 304: 'volume too small', 500: 'forget without a target',
  501: 'forget target not found', 502: 'forget of a forget', 503: 'forget not allowed',
  504: 'forgotten duplicate',
};
const HEX_HASH = /^[0-9a-f]{64}$/;
const AMENDS_SHOWN = 20;

export async function message(main, hash) {
  document.title = `Message ${hash} · raleph explorer`;
  const answer = await getJson(`/api/v0/messages/${encodeURIComponent(hash)}`, { missingIsNull: true });
  if (!answer) {
    await notFound(main, hash);
    return;
  }
  const status = answer.status ?? 'unknown';
  // A pending message may have several copies; a processed one is `message`.
  const msg = answer.message ?? answer.messages?.[0] ?? {};
  main.append(h('div', { class: 'page-head' },
    h('h1', {}, `${msg.type ?? 'Unknown'} message`),
    badge(status)));
  main.append(h('p', { class: 'mono wrap', id: 'item-hash' }, hash));

  if (status === 'rejected') {
    const code = answer.error_code;
    main.append(section('Rejected',
      h('p', { class: 'error' }, `Error ${code}: ${ERROR_CODES[code] ?? 'unknown error code'}`),
      answer.details != null ? jsonBlock(answer.details) : null));
  }
  if (status === 'forgotten' || status === 'removed') {
    const by = answer.forgotten_by ?? [];
    main.append(section(status === 'forgotten' ? 'Forgotten' : 'Removed',
      status === 'forgotten'
        ? h('p', {}, 'Its content was deleted by ', by.map((b, i) => [i ? ', ' : '', messageLink(b)]), '.')
        : h('p', {}, `Removed (${answer.reason ?? 'no reason given'}).`)));
  }

  const content = msg.content ?? parsed(msg.item_content);
  main.append(section('Envelope', facts([
    ['Type', msg.type],
    ['Chain', msg.chain],
    ['Sender', msg.sender ? link(paths.address(msg.sender), h('span', { class: 'mono' }, msg.sender)) : null],
    ['On behalf of', content?.address && content.address !== msg.sender
      ? link(paths.address(content.address), h('span', { class: 'mono' }, content.address)) : null],
    ['Channel', msg.channel ? link(paths.messages({ channels: msg.channel }), msg.channel) : '—'],
    ['Time', typeof msg.time === 'number' ? dateTime(msg.time) : msg.time],
    ['Received', answer.reception_time ? dateTime(answer.reception_time) : null],
    ['Item type', msg.item_type],
    ['Size', msg.size != null ? bytes(msg.size) : null],
    ['Signature', msg.signature ? h('span', { class: 'mono wrap' }, msg.signature) : null],
  ])));

  const typed = typeFacts(msg, content);
  if (typed.length) main.append(section('What it does', facts(typed)));
  if (content != null) main.append(section('Content', jsonBlock(content)));
  await anchoring(main, hash, msg);
  if (msg.type === 'POST' && content?.type !== 'amend' && status === 'processed') {
    await amends(main, hash);
  }
}

// A rejected message is kept as it was sent: its content is still the signed text.
function parsed(text) {
  if (typeof text !== 'string') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function messageLink(hash) {
  return HEX_HASH.test(String(hash)) ? link(paths.message(hash), shortSpan(hash)) : String(hash);
}

// The facts each type adds: a post's type and reference, a file's download, a program's URL.
function typeFacts(msg, content) {
  if (!content || typeof content !== 'object') return [];
  switch (msg.type) {
    case 'POST':
      return [
        ['Post type', content.type ? link(paths.messages({ contentTypes: content.type }), content.type) : null],
        ['Amends', content.type === 'amend' && content.ref ? messageLink(content.ref) : null],
        ['Reference', content.type !== 'amend' && content.ref ? String(content.ref) : null],
        ['Tags', tags(content.content?.tags)],
      ];
    case 'AGGREGATE':
      return [['Key', content.key != null ? String(content.key) : null]];
    case 'STORE':
      return [
        ['File', content.item_hash
          ? h('span', {}, h('span', { class: 'mono wrap' }, String(content.item_hash)), ' ',
            link(paths.raw(content.item_hash), 'Download'))
          : null],
        ['Storage', content.item_type],
        ['Reference', content.ref != null ? String(content.ref) : null],
        ['Tags', tags(content.tags)],
      ];
    case 'PROGRAM':
      return [
        ['Call it at', link(paths.vm(msg.item_hash), h('span', { class: 'mono' }, `/vm/${msg.item_hash}`))],
        ['Code', content.code?.ref ? messageLink(content.code.ref) : null],
        ['Runtime', content.runtime?.ref ? messageLink(content.runtime.ref) : null],
        ['Entrypoint', content.code?.entrypoint != null ? String(content.code.entrypoint) : null],
        ['Resources', resources(content.resources)],
        ['Internet', content.environment ? (content.environment.internet ? 'allowed' : 'none') : null],
        ['Answers', triggers(content.on)],
        ['Volumes', Array.isArray(content.volumes) && content.volumes.length
          ? content.volumes.slice(0, 20).map((v) => String(v?.mount ?? v?.name ?? '?')).join(', ') : null],
      ];
    case 'FORGET':
      return [
        ['Forgets', Array.isArray(content.hashes) ? content.hashes.map((x, i) => [i ? ', ' : '', messageLink(x)]) : null],
        ['Reason', content.reason != null ? String(content.reason) : null],
      ];
    default:
      return [];
  }
}

function resources(r) {
  if (!r || typeof r !== 'object') return null;
  const parts = [];
  if (r.vcpus != null) parts.push(`${Number(r.vcpus)} vCPU`);
  if (r.memory != null) parts.push(`${Number(r.memory)} MiB`);
  if (r.seconds != null) parts.push(`${Number(r.seconds)} s per request`);
  return parts.length ? parts.join(', ') : null;
}

// What a program answers: HTTP requests, and messages matching its `on.message` filters.
function triggers(on) {
  if (!on || typeof on !== 'object') return null;
  const parts = [];
  if (on.http) parts.push('HTTP requests');
  if (Array.isArray(on.message) && on.message.length) parts.push(`messages (${on.message.length} filter${on.message.length === 1 ? '' : 's'})`);
  if (on.persistent) parts.push('always on');
  return parts.length ? parts.join(', ') : null;
}

function tags(list) {
  if (!Array.isArray(list) || list.length === 0) return null;
  return list.slice(0, 50).map((tag, i) => [i ? ' ' : '', link(paths.messages({ tags: String(tag) }), h('span', { class: 'chip' }, String(tag)))]);
}

// Confirmations on chains, and the Merkle proof of the batch that anchored the message.
async function anchoring(main, hash, msg) {
  const confirmations = Array.isArray(msg.confirmations) ? msg.confirmations : [];
  if (confirmations.length === 0) {
    main.append(section('Anchoring', notice('Not anchored on a chain yet.')));
    return;
  }
  const rows = confirmations.map((c) => h('tr', {},
    h('td', {}, String(c.chain ?? '')),
    h('td', {}, String(c.height ?? '')),
    h('td', {}, h('span', { class: 'mono wrap' }, String(c.hash ?? '')))));
  const card = section('Anchoring',
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Chain'), h('th', {}, 'Block'), h('th', {}, 'Transaction'))),
      h('tbody', {}, rows))));
  main.append(card);
  const proof = await getJson(`/api/v0/messages/${encodeURIComponent(hash)}/proof`, { missingIsNull: true }).catch(() => null);
  if (!proof) return;
  const anchors = Array.isArray(proof.anchors) ? proof.anchors : [];
  for (const anchor of anchors) {
    card.append(h('h3', {}, `Proof on ${anchor.chain ?? 'a chain'}`), facts([
      ['Transaction', h('span', { class: 'mono wrap' }, String(anchor.tx_hash ?? ''))],
      ['Block', `${anchor.height ?? ''}`],
      ['Block time', typeof anchor.time === 'number' ? dateTime(anchor.time) : null],
      ['Archive', anchor.archive != null ? h('span', { class: 'mono wrap' }, String(anchor.archive)) : null],
      ['Merkle root', anchor.merkle_root != null ? h('span', { class: 'mono wrap' }, String(anchor.merkle_root)) : null],
      ['Position', anchor.position != null ? String(anchor.position) : null],
      ['Path', Array.isArray(anchor.proof) ? `${anchor.proof.length} hashes` : null],
    ]));
  }
  card.append(h('p', { class: 'muted' }, 'Check it against a chain node of your choice: ',
    h('code', {}, `raleph message verify ${hash} --rpc <URL>`)), jsonBlock(proof, 4000));
}

async function amends(main, hash) {
  const answer = await getJson(`/api/v0/messages.json?${query({ refs: hash, msgTypes: 'POST', contentTypes: 'amend', pagination: AMENDS_SHOWN })}`);
  const list = answer.messages ?? [];
  if (list.length === 0) return;
  const table = messageTable({ limit: AMENDS_SHOWN });
  for (const m of list) table.add(m);
  const total = answer.pagination_total ?? list.length;
  main.append(section(`Amended ${total.toLocaleString()} time${total === 1 ? '' : 's'}`, table.element,
    total > list.length ? link(paths.messages({ refs: hash, msgTypes: 'POST', contentTypes: 'amend' }), 'All amends →') : null));
}

async function notFound(main, hash) {
  const file = await getJson(`/api/v0/storage/metadata/${encodeURIComponent(hash)}`, { missingIsNull: true }).catch(() => null);
  if (file) {
    main.append(h('h1', {}, 'File'), h('p', { class: 'mono wrap' }, hash), section('Stored on this node', facts([
      ['Kind', String(file.type ?? 'file')],
      ['Size', bytes(file.size)],
      ['Download', link(paths.raw(hash), 'Download')],
      ['Pinned by', link(paths.messages({ contentHashes: hash }), 'STORE messages')],
    ])));
    return;
  }
  main.append(h('h1', {}, 'Not found'), notice(`No message or file ${hash} on this node.`, 'error'));
}
