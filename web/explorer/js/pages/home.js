// The front page: the latest messages, live.

import { h, link, paths } from '../dom.js';
import { follow } from '../api.js';
import { messageTable } from '../table.js';

// Messages the websocket sends first, before the live ones.
const HISTORY = 30;
const ROWS = 100;

export function home(main) {
  document.title = 'Latest messages · raleph explorer';
  const state = h('span', { class: 'live-state', id: 'live-state' }, 'connecting…');
  const table = messageTable({ limit: ROWS, empty: 'No messages yet: they appear here as the node processes them.' });
  let historyDone = false;
  main.append(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Latest messages'),
      state),
    h('p', { class: 'lead' },
      'Messages appear as this node processes them. Browse by ',
      link(paths.messages({ msgTypes: 'POST' }), 'posts'), ', ',
      link(paths.messages({ msgTypes: 'AGGREGATE' }), 'aggregates'), ', ',
      link(paths.messages({ msgTypes: 'STORE' }), 'files'), ' or ',
      link(paths.messages({ msgTypes: 'PROGRAM,INSTANCE' }), 'programs'), ', or see ',
      link(paths.node(), 'the node'), '.'),
    table.element);
  const stop = follow(`/api/ws0/messages?history=${HISTORY}`, {
    onFrame: (frame) => {
      for (const message of Array.isArray(frame) ? frame : [frame]) {
        table.add(message, { fresh: historyDone });
      }
    },
    onState: (word) => {
      state.textContent = word === 'live' ? '● live' : 'reconnecting…';
      state.classList.toggle('on', word === 'live');
      // Frames that come a moment after the socket opens are history; later ones are new.
      if (word === 'live') setTimeout(() => { historyDone = true; }, 500);
    },
  });
  addEventListener('pagehide', stop, { once: true });
}
