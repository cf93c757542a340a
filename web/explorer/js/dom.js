// Every element the explorer shows is built here. Data (message content, channels, post
// types, addresses: anything a stranger can write) only ever becomes text nodes or attribute
// values, never markup, and links are only the explorer's own paths.

const SVG_NS = 'http://www.w3.org/2000/svg';

// `h('a', {href, class}, 'text', child, [more])`: strings become text, null/false are skipped.
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// The same, for SVG elements (charts).
export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name.startsWith('on')) {
      el.addEventListener(name.slice(2), value);
    } else {
      if (name === 'href' && !isOwnPath(String(value))) {
        throw new Error(`refusing a link that is not one of the node's paths: ${value}`);
      }
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// A path on this node (`/…` but not `//host`), or a query of the current page (`?…`).
function isOwnPath(href) {
  return (href.startsWith('/') && !href.startsWith('//')) || href.startsWith('?');
}

// The explorer's own pages and the node's download routes.
export const paths = {
  home: () => '/',
  message: (hash) => `/explorer/message/${encodeURIComponent(hash)}`,
  address: (address) => `/explorer/address/${encodeURIComponent(address)}`,
  messages: (filters) => `/explorer/messages?${new URLSearchParams(filters)}`,
  node: () => '/explorer/node',
  raw: (hash) => `/api/v0/storage/raw/${encodeURIComponent(hash)}`,
  vm: (hash) => `/vm/${encodeURIComponent(hash)}`,
};

export function link(href, ...children) {
  return h('a', { href }, ...children);
}

// `0123abcd…89ef`, with the whole value as the tooltip.
export function short(value, head = 8, tail = 6) {
  const text = String(value ?? '');
  if (text.length <= head + tail + 1) return text;
  return `${text.slice(0, head)}…${text.slice(-tail)}`;
}

export function shortSpan(value, head, tail) {
  return h('span', { class: 'mono', title: String(value ?? '') }, short(value, head, tail));
}

// Seconds since the epoch (a message's `time`) or an ISO string, as local date and time.
export function dateTime(value) {
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value ?? '');
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function ago(seconds) {
  const delta = Date.now() / 1000 - seconds;
  if (!Number.isFinite(delta)) return '';
  if (delta < 0) return 'in the future';
  if (delta < 60) return `${Math.floor(delta)} s ago`;
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.floor(delta / 3600)} h ago`;
  return `${Math.floor(delta / 86400)} d ago`;
}

export function timeCell(seconds) {
  return h('time', { title: dateTime(seconds), datetime: new Date(seconds * 1000).toISOString() }, ago(seconds));
}

export function bytes(n) {
  if (n == null || !Number.isFinite(Number(n))) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function badge(status) {
  return h('span', { class: `badge status-${String(status).replace(/[^a-z]/g, '')}` }, status);
}

// A definition list from `[label, value]` pairs; rows with a null value are left out.
export function facts(rows) {
  return h('dl', { class: 'facts' }, rows.filter(([, value]) => value != null).map(([label, value]) => [
    h('dt', {}, label),
    h('dd', {}, value),
  ]));
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

export function notice(text, kind = 'info') {
  return h('p', { class: `notice ${kind}` }, text);
}
