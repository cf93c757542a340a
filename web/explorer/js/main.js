// The explorer's entry: picks the page for the URL and shows it in <main>. Every page is a
// full load (the node serves the same shell for all of them), so links are ordinary links.

import { h, notice } from './dom.js';
import { home } from './pages/home.js';
import { list } from './pages/list.js';
import { message } from './pages/message.js';
import { address } from './pages/address.js';
import { node } from './pages/node.js';
import { search } from './pages/search.js';

const ROUTES = [
  [/^\/(?:explorer\/?)?$/, home],
  [/^\/explorer\/messages\/?$/, list],
  [/^\/explorer\/message\/([^/]+)\/?$/, message],
  [/^\/explorer\/address\/([^/]+)\/?$/, address],
  [/^\/explorer\/node\/?$/, node],
  [/^\/explorer\/search\/?$/, search],
];

async function show() {
  const main = document.getElementById('main');
  main.replaceChildren();
  for (const [pattern, page] of ROUTES) {
    const match = location.pathname.match(pattern);
    if (!match) continue;
    try {
      await page(main, ...match.slice(1).map(decodeURIComponent));
    } catch (error) {
      main.append(notice(`Could not load this page: ${error.message}`, 'error'));
    }
    main.dataset.ready = 'true';
    return;
  }
  document.title = 'Not found · raleph explorer';
  main.append(h('h1', {}, 'Page not found'), notice(`The explorer has no page ${location.pathname}.`, 'error'));
  main.dataset.ready = 'true';
}

show();
