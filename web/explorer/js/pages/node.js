// The node: what it is, its peers, where it stands (messages, queue, storage), and charts of
// the last hour, refreshed while the page is open.

import { h, short, bytes, facts, section, notice } from '../dom.js';
import { getJson } from '../api.js';
import { chart } from '../chart.js';

const REFRESH_MS = 10000;

export async function node(main) {
  document.title = 'Node · raleph explorer';
  const summary = h('div');
  const charts = h('div', { class: 'charts' });
  const peers = h('div');
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'This node')),
    section('Now', summary), section('The last hour', charts), section('Peers', peers));
  const identity = await identityFacts();
  const refresh = async () => {
    const [metrics, history, peerList] = await Promise.all([
      readMetrics(),
      getJson('/api/v0/status/history', { missingIsNull: true }).catch(() => null),
      getJson('/api/v0/p2p/peers', { missingIsNull: true }).catch(() => null),
    ]);
    summary.replaceChildren(facts([
      ...identity,
      ['Messages stored', count(metrics.pyaleph_status_sync_messages_total)],
      ['Waiting to be processed', count(metrics.pyaleph_status_sync_pending_messages_total)],
      ['Rejected', count(metrics['raleph_messages_by_status{status="rejected"}'])],
      ['Forgotten', count(metrics['raleph_messages_by_status{status="forgotten"}'])],
      ['Connected peers', count(metrics.raleph_p2p_peers ?? metrics.pyaleph_status_peers_total)],
      ['Storage used', metrics.raleph_storage_bytes != null ? bytes(metrics.raleph_storage_bytes) : null],
      ['Open message websockets', count(metrics.raleph_websocket_connections)],
    ]));
    charts.replaceChildren(...historyCharts(history));
    peers.replaceChildren(peerTable(peerList?.peers));
  };
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  addEventListener('pagehide', () => clearInterval(timer), { once: true });
}

function count(value) {
  return value == null ? null : Number(value).toLocaleString();
}

async function identityFacts() {
  const [version, identity] = await Promise.all([
    getJson('/api/v0/version').catch(() => null),
    getJson('/api/v0/p2p/identity', { missingIsNull: true }).catch(() => null),
  ]);
  return [
    ['Version', version?.version ?? null],
    ['Peer id', identity?.peer_id ? h('span', { class: 'mono wrap' }, identity.peer_id) : null],
    ['Listening on', Array.isArray(identity?.addresses) && identity.addresses.length
      ? h('ul', { class: 'plain' }, identity.addresses.slice(0, 20).map((a) => h('li', { class: 'mono wrap' }, String(a))))
      : null],
  ];
}

// The Prometheus text of /metrics as `{name or name{labels}: number}`.
async function readMetrics() {
  const response = await fetch('/metrics');
  if (!response.ok) throw new Error(`metrics: ${response.status}`);
  const values = {};
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const split = line.lastIndexOf(' ');
    const value = Number(line.slice(split + 1));
    if (split > 0 && Number.isFinite(value)) values[line.slice(0, split)] = value;
  }
  return values;
}

// Messages per minute from the growth of the stored total between samples; the queue, peers
// and storage as sampled.
function historyCharts(history) {
  const samples = Array.isArray(history?.samples) ? history.samples : [];
  if (!history) return [notice('This node keeps no status history.')];
  const rate = [];
  for (let i = 1; i < samples.length; i++) {
    const seconds = samples[i].time - samples[i - 1].time;
    const grown = samples[i].messages - samples[i - 1].messages;
    if (seconds > 0) rate.push({ time: samples[i].time, value: Math.max(0, Math.round((grown * 60) / seconds)) });
  }
  const series = (field) => samples.filter((s) => s[field] != null).map((s) => ({ time: s.time, value: Number(s[field]) }));
  return [
    chart({ title: 'Messages per minute', points: rate, bars: true }),
    chart({ title: 'Queue depth', points: series('pending') }),
    chart({ title: 'Peers', points: series('peers') }),
    chart({ title: 'Storage used', points: series('storage_bytes'), format: bytes }),
  ];
}

function peerTable(list) {
  if (!Array.isArray(list)) return notice('This node runs without a network.');
  if (list.length === 0) return notice('No peers connected.');
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['Peer', 'Kind', 'Version', 'Connections', 'API', 'Addresses'].map((c) => h('th', {}, c)))),
    h('tbody', {}, list.slice(0, 200).map((peer) => h('tr', {},
      h('td', {}, h('span', { class: 'mono', title: String(peer.peer_id ?? '') }, short(peer.peer_id, 10, 6))),
      h('td', {}, peer.is_raleph ? 'raleph' : 'other'),
      h('td', {}, peer.version != null ? String(peer.version) : '—'),
      h('td', {}, String(peer.connections ?? '')),
      h('td', { class: 'mono wrap' }, peer.http_base_url != null ? String(peer.http_base_url) : '—'),
      h('td', { class: 'mono wrap' }, Array.isArray(peer.addresses) ? peer.addresses.slice(0, 3).join(' ') : ''))))));
}
