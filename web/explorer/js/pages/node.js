// The node: what it is, where it stands (messages, queue, chains read, storage), its peers,
// and charts of the last hour. The figures follow the node live (the status websocket); the
// charts start from the node's own history of the last hour and grow as the page stays open.

import { h, short, bytes, facts, section, notice } from '../dom.js';
import { follow, getJson } from '../api.js';
import { chart } from '../chart.js';

// The node samples its history this often; live points are added no more often.
const SAMPLE_SECS = 10;
// Points kept: an hour of samples.
const MAX_SAMPLES = 360;
const PEERS_REFRESH_MS = 15000;

export async function node(main) {
  document.title = 'Node · raleph explorer';
  const state = h('span', { class: 'live-state' }, 'connecting…');
  const now = h('div');
  const charts = h('div', { class: 'charts' });
  const peers = h('div');
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'This node'), state),
    section('Now', now), section('The last hour', charts), section('Peers', peers));

  const [identity, history, metrics] = await Promise.all([
    identityFacts(),
    getJson('/api/v0/status/history', { missingIsNull: true }).catch(() => null),
    getJson('/metrics.json'),
  ]);
  const samples = Array.isArray(history?.samples) ? history.samples.slice(-MAX_SAMPLES) : [];
  // The figures now: the charts' last point, kept as a sample once SAMPLE_SECS have passed.
  let current = null;
  const show = (m) => {
    now.replaceChildren(facts([...identity, ...figures(m)]));
    charts.replaceChildren(...historyCharts(current ? [...samples, current] : samples));
  };
  const addSample = (m) => {
    current = sampleOf(m, Date.now() / 1000);
    const last = samples[samples.length - 1];
    if (last && current.time - last.time < SAMPLE_SECS) return;
    samples.push(current);
    current = null;
    if (samples.length > MAX_SAMPLES) samples.shift();
  };
  addSample(metrics);
  show(metrics);
  const stopStatus = follow('/api/ws0/status', {
    onFrame: (m) => {
      if (m && typeof m === 'object') {
        addSample(m);
        show(m);
      }
    },
    onState: (word) => {
      state.textContent = word === 'live' ? '● live' : 'reconnecting…';
      state.classList.toggle('on', word === 'live');
    },
  });
  const refreshPeers = async () => {
    const list = await getJson('/api/v0/p2p/peers', { missingIsNull: true }).catch(() => null);
    peers.replaceChildren(peerTable(list?.peers));
  };
  await refreshPeers();
  const timer = setInterval(refreshPeers, PEERS_REFRESH_MS);
  addEventListener('pagehide', () => {
    stopStatus();
    clearInterval(timer);
  }, { once: true });
}

function count(value) {
  return value == null ? null : Number(value).toLocaleString();
}

// The `/metrics.json` dict (the reference's names, then raleph's) as rows.
function figures(m) {
  const byStatus = m.raleph_messages_by_status ?? {};
  const chains = Object.entries(m.raleph_chain_synced_height ?? {});
  return [
    ['Messages stored', count(m.pyaleph_status_sync_messages_total)],
    ['Waiting to be processed', count(m.pyaleph_status_sync_pending_messages_total)],
    ['Rejected', count(byStatus.rejected)],
    ['Forgotten', count(byStatus.forgotten)],
    ['Chains read', chains.length
      ? h('ul', { class: 'plain' }, chains.map(([chain, height]) => h('li', {}, `${chain}: to block ${count(height)}`)))
      : 'none (this node follows no chain)'],
    ['Connected peers', count(m.pyaleph_status_peers_total)],
    ['Storage used', m.raleph_storage_bytes != null ? bytes(m.raleph_storage_bytes) : 'not measured yet'],
    ['Open message websockets', count(m.raleph_websocket_connections)],
  ];
}

// A history sample (the shape of /api/v0/status/history) from the metrics dict.
function sampleOf(m, time) {
  return {
    time,
    messages: Number(m.pyaleph_status_sync_messages_total ?? 0),
    pending: Number(m.pyaleph_status_sync_pending_messages_total ?? 0),
    peers: Number(m.pyaleph_status_peers_total ?? 0),
    storage_bytes: m.raleph_storage_bytes ?? null,
  };
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

// Messages per minute from the growth of the stored total between samples; the queue, peers
// and storage as sampled.
function historyCharts(samples) {
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
    h('thead', {}, h('tr', {}, ['Peer', 'Kind', 'Version', 'Connections', 'Received / accepted', 'API', 'Addresses'].map((c) => h('th', {}, c)))),
    h('tbody', {}, list.slice(0, 200).map((peer) => h('tr', {},
      h('td', {}, h('span', { class: 'mono', title: String(peer.peer_id ?? '') }, short(peer.peer_id, 10, 6))),
      h('td', {}, peer.is_raleph ? 'raleph' : 'other'),
      h('td', {}, peer.version != null ? String(peer.version) : '—'),
      h('td', {}, String(peer.connections ?? '')),
      h('td', {}, `${count(peer.counters?.messages_received) ?? '—'} / ${count(peer.counters?.messages_accepted) ?? '—'}`),
      h('td', { class: 'mono wrap' }, peer.http_base_url != null ? String(peer.http_base_url) : '—'),
      h('td', { class: 'mono wrap' }, Array.isArray(peer.addresses) ? peer.addresses.slice(0, 3).join(' ') : ''))))));
}
