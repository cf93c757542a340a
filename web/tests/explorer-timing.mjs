// How long the explorer's pages take to show, in Debian's Chromium, against a running node:
// from navigation to the page having drawn what it asked the node for. A benchmark, not a
// test: it prints figures (BENCHMARKS.md, "Explorer").
//
//   RALEPH_PLAYWRIGHT_DIR=… RALEPH_CHROMIUM=… node web/tests/explorer-timing.mjs URL [ROUNDS]
//
// The pages are picked from what the node holds: its newest message, that message's sender
// and channel, and the busiest sender of the first page of messages.

import { createRequire } from 'node:module';
import { join } from 'node:path';

const [base, roundsText = '5'] = process.argv.slice(2);
const rounds = Number.parseInt(roundsText, 10);
const require = createRequire(join(process.env.RALEPH_PLAYWRIGHT_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const newest = (await (await fetch(`${base}/api/v0/messages.json?pagination=200`)).json()).messages;
const first = newest[0];
const senders = new Map();
for (const m of newest) senders.set(m.sender, (senders.get(m.sender) ?? 0) + 1);
const busiest = [...senders.entries()].sort((a, b) => b[1] - a[1])[0][0];
const pages = [
  ['home (live, 30 of history)', '/'],
  ['message', `/explorer/message/${first.item_hash}`],
  ['address', `/explorer/address/${busiest}`],
  ['channel, page 1 (live)', `/explorer/messages?channels=${encodeURIComponent(first.channel)}`],
  ['channel, page 500', `/explorer/messages?channels=${encodeURIComponent(first.channel)}&page=500`],
  ['all messages, page 10 000', '/explorer/messages?page=10000'],
  ['search a word', `/explorer/search?q=${encodeURIComponent(first.channel)}`],
  ['node', '/explorer/node'],
];

const browser = await chromium.launch({
  executablePath: process.env.RALEPH_CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage();
console.log(`${newest.length ? 'node' : 'empty node'} ${base}, ${rounds} rounds per page (after one warm-up)`);
console.log('page                          median ms   max ms');
for (const [name, path] of pages) {
  const times = [];
  for (let i = 0; i <= rounds; i++) {
    const start = performance.now();
    await page.goto(base + path);
    await page.waitForSelector('#main[data-ready="true"]', { timeout: 60000 });
    if (i > 0) times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(`${name.padEnd(30)}${median.toFixed(0).padStart(9)}${times[times.length - 1].toFixed(0).padStart(9)}`);
}
await browser.close();
