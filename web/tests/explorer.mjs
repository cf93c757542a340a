// The explorer's end-to-end test, in Debian's Chromium driven by playwright-core.
//
//   node web/tests/explorer.mjs FIXTURE.json
//
// FIXTURE.json (written by crates/raleph/tests/explorer.rs) names the node's URL and the
// messages it holds. Env: RALEPH_PLAYWRIGHT_DIR (where scripts/browser-tools.sh installed
// playwright-core), RALEPH_CHROMIUM (the browser). Exits non-zero on the first failed check.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const fixture = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(join(process.env.RALEPH_PLAYWRIGHT_DIR, 'package.json'));
const { chromium } = require('playwright-core');

// How long one page may take to show what a check waits for.
const WAIT_MS = 15000;
const base = fixture.url;
const failures = [];
let checks = 0;

function check(condition, what) {
  checks += 1;
  if (!condition) {
    failures.push(what);
    console.log(`FAIL ${what}`);
    throw new Error(what);
  }
  console.log(`ok   ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.RALEPH_CHROMIUM,
  headless: true,
  // This machine has no network but loopback: Chromium's own background traffic would only
  // fail, noisily.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const problems = [];
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
page.on('console', (message) => {
  // A 404 is an answer the pages expect (no aggregate, not anchored yet); the node's answers
  // are checked below, by status.
  if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
    problems.push(`console error: ${message.text()}`);
  }
});
page.on('response', (response) => {
  if (response.status() >= 500) problems.push(`${response.status()} from ${response.url()}`);
});
page.on('dialog', (dialog) => {
  problems.push(`a dialog opened: ${dialog.message()}`);
  dialog.dismiss();
});

// Opens a path and waits until its page has drawn itself.
async function open(path) {
  await page.goto(base + path);
  await page.waitForSelector('#main[data-ready="true"]', { timeout: WAIT_MS });
}

// Nothing a message carries ran, and the page holds no element it could have smuggled in.
async function nothingRan(where) {
  const found = await page.evaluate(() => ({
    pwned: window.__pwned ?? null,
    scripts: document.querySelectorAll('script').length,
    images: document.querySelectorAll('img').length,
    iframes: document.querySelectorAll('iframe, object, embed').length,
    svgFromData: [...document.querySelectorAll('svg')].filter((s) => s.hasAttribute('onload')).length,
  }));
  check(found.pwned === null, `${where}: no script from a message ran (window.__pwned = ${found.pwned})`);
  check(found.scripts === 1 && found.images === 0 && found.iframes === 0 && found.svgFromData === 0,
    `${where}: no element from a message (${JSON.stringify(found)})`);
  check(problems.length === 0, `${where}: no page or console error (${problems.join('; ')})`);
}

// A screenshot, checked not blank by the browser itself: decoded on a canvas, it must have
// several colours and a fair share of pixels unlike the background.
async function screenshot(name) {
  const png = await page.screenshot({ path: join(fixture.screenshots, `${name}.png`), fullPage: true });
  const probe = await context.newPage();
  const stats = await probe.evaluate(async (b64) => {
    const image = new Image();
    image.src = `data:image/png;base64,${b64}`;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = image.width;
    canvas.height = image.height;
    const draw = canvas.getContext('2d');
    draw.drawImage(image, 0, 0);
    const { data } = draw.getImageData(0, 0, image.width, image.height);
    const counts = new Map();
    for (let i = 0; i < data.length; i += 4 * 7) {
      const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const background = Math.max(...counts.values());
    return { colours: counts.size, notBackground: 1 - background / total, width: image.width, height: image.height };
  }, png.toString('base64'));
  await probe.close();
  check(stats.colours >= 16 && stats.notBackground >= 0.02,
    `screenshot ${name}.png is not blank (${stats.width}×${stats.height}, ${stats.colours} colours, ${(stats.notBackground * 100).toFixed(1)} % not background)`);
}

const row = (hash) => `tr[data-hash="${hash}"]`;

try {
  // The front page: the latest messages, then one more arriving live.
  await open('/');
  await page.waitForSelector(row(fixture.hostile), { timeout: WAIT_MS });
  check(await page.locator(`${row(fixture.hostile)} a`, { hasText: fixture.hostile_channel }).count() === 1,
    'home: the hostile channel is shown as text, in a link to its messages');
  await page.waitForSelector('.live-state.on', { timeout: WAIT_MS });
  check(await page.locator(row(fixture.live_hash)).count() === 0, 'home: the live message is not there before it is sent');
  const sent = await fetch(`${base}/api/v0/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sync: false, message: fixture.live }),
  });
  check(sent.ok, `home: the live message was accepted (${sent.status})`);
  await page.waitForSelector(row(fixture.live_hash), { timeout: WAIT_MS });
  check(true, 'home: the new message appeared live, without a reload');
  await nothingRan('home');
  await screenshot('home');

  // Following a link from the table to the hostile message's page.
  await page.click(`${row(fixture.hostile)} td:nth-child(3) a`);
  await page.waitForURL(`**/explorer/message/${fixture.hostile}`);
  await page.waitForSelector('#main[data-ready="true"]', { timeout: WAIT_MS });
  const json = await page.locator('pre.json').first().textContent();
  check(json.includes(JSON.stringify(fixture.script).slice(1, -1)), 'message: the content is shown, script and all, as text');
  check(await page.getByText('processed', { exact: true }).count() >= 1, 'message: its status is shown');
  await nothingRan('message');
  await screenshot('message');

  // A post's page lists its amend; the amend links back.
  await open(`/explorer/message/${fixture.note}`);
  check(await page.getByRole('heading', { name: 'Amended 1 time' }).count() === 1, 'message: a post lists its amend');
  check(await page.locator(row(fixture.amend)).count() === 1, 'message: the amend is in the list');
  if (fixture.anchored) {
    check(await page.getByRole('heading', { name: 'Proof on ETH' }).count() === 1, 'message: an anchored message shows its proof');
    const proof = await (await fetch(`${base}/api/v0/messages/${fixture.anchored}/proof`)).json();
    check(await page.getByText(proof.anchors[0].tx_hash).count() >= 1, 'message: and the transaction that anchored it');
  } else {
    console.log('skip anchoring checks: no chain (RALEPH_ANVIL unset)');
  }

  // Long content is cut, then shown whole on request.
  await open(`/explorer/message/${fixture.big}`);
  const cut = (await page.locator('pre.json').first().textContent()).length;
  await page.getByRole('button', { name: /Show all/ }).click();
  const whole = (await page.locator('pre.json').first().textContent()).length;
  check(cut <= 20000 && whole > 60000, `message: long content cut at ${cut} characters, ${whole} when shown whole`);

  // A rejected message shows its error; a forgotten one, the FORGET that removed it.
  await open(`/explorer/message/${fixture.rejected}`);
  check(await page.getByText('Error 0: invalid format').count() === 1, 'message: a rejection shows its error code and meaning');
  check((await page.locator('pre.json').first().textContent()).includes('needs a ref'), 'message: a rejection shows its details');
  await open(`/explorer/message/${fixture.forgotten}`);
  check(await page.locator(`a[href="/explorer/message/${fixture.forget}"]`).count() >= 1, 'message: a forgotten message links the FORGET that removed it');
  await open(`/explorer/message/${fixture.program}`);
  check(await page.locator(`a[href="/vm/${fixture.program}"]`).count() === 1, 'message: a program links its /vm URL');
  check(await page.getByText('1 vCPU, 64 MiB, 2 s per request').count() === 1, 'message: a program shows its resources');

  // The address page, reached from the sender link of a message.
  await open(`/explorer/message/${fixture.note}`);
  await page.click(`a[href="/explorer/address/${fixture.address}"]`);
  await page.waitForSelector('#main[data-ready="true"]', { timeout: WAIT_MS });
  await page.waitForSelector(`a[href="/api/v0/storage/raw/${fixture.file_hash}"]`, { timeout: WAIT_MS });
  check(await page.getByRole('heading', { name: 'profile' }).count() === 1, 'address: the aggregate key is shown');
  check((await page.locator('.aggregate pre.json').textContent()).includes('"level": 3'), 'address: the aggregate’s current value is shown');
  check(await page.locator(`a[href="/vm/${fixture.program}"]`).count() === 1, 'address: the program is listed with its /vm link');
  check(await page.locator(`a[href="/explorer/message/${fixture.note}"]`).count() >= 1, 'address: the post is listed');
  const download = await page.request.get(`${base}/api/v0/storage/raw/${fixture.file_hash}`);
  check(download.ok() && (await download.body()).length === fixture.file_size, 'address: the file downloads whole');
  await nothingRan('address');
  await screenshot('address');

  // Search: a word is looked up as channel, tag and post type; a hash goes to its message.
  await open('/');
  await page.fill('#search input[name=q]', 'explorer-tag');
  await page.press('#search input[name=q]', 'Enter');
  await page.waitForURL('**/explorer/search?**');
  await page.waitForSelector('#main[data-ready="true"]', { timeout: WAIT_MS });
  const tagLink = page.getByRole('link', { name: 'Tag “explorer-tag”' });
  check(await tagLink.count() === 1, 'search: a word is found as a tag');
  await screenshot('search');
  await tagLink.click();
  await page.waitForSelector('#main[data-ready="true"]', { timeout: WAIT_MS });
  await page.waitForSelector(row(fixture.note), { timeout: WAIT_MS });
  check(await page.locator(row(fixture.hostile)).count() === 1, 'list: both tagged posts are listed');
  await nothingRan('list');
  await screenshot('list');
  await page.fill('#search input[name=q]', fixture.store.toUpperCase());
  await page.press('#search input[name=q]', 'Enter');
  await page.waitForURL(`**/explorer/message/${fixture.store}`);
  await page.waitForSelector('#main[data-ready="true"]', { timeout: WAIT_MS });
  check(await page.getByText('STORE message').count() === 1, 'search: an item hash leads to its message');
  await page.fill('#search input[name=q]', fixture.address);
  await page.press('#search input[name=q]', 'Enter');
  await page.waitForURL(`**/explorer/address/${fixture.address}`);
  check(true, 'search: an address leads to its page');
  await page.selectOption('#search select[name=kind]', 'channel');
  await page.fill('#search input[name=q]', fixture.hostile_channel);
  await page.press('#search input[name=q]', 'Enter');
  await page.waitForSelector(row(fixture.hostile), { timeout: WAIT_MS });
  check(true, 'search: a channel full of markup finds its message');
  await nothingRan('channel list');

  // The node page: figures, charts, peers.
  await open('/explorer/node');
  check(await page.getByText('Messages stored').count() === 1, 'node: the stored messages are shown');
  check(await page.locator('figure.chart svg').count() === 4, 'node: four charts drawn, from the node’s history and its figures now');
  await page.waitForSelector('.live-state.on', { timeout: WAIT_MS });
  check(true, 'node: the figures follow the status websocket');
  if (fixture.anchored) {
    check(await page.getByText(/^ETH: to block \d+$/).count() === 1, 'node: how far the chain is read');
  }
  await nothingRan('node');
  await screenshot('node');

  // The interactive API docs, reached from the explorer's menu: every operation of the
  // OpenAPI document listed, and one sent from the page.
  await open('/');
  await page.click('header nav a[href="/api/docs"]');
  await page.waitForSelector('#operations details', { timeout: WAIT_MS });
  const spec = await (await fetch(`${base}/api/openapi.json`)).json();
  const operations = Object.values(spec.paths).flatMap((item) => Object.keys(item)
    .filter((method) => ['get', 'post', 'head', 'put', 'delete', 'patch'].includes(method))).length;
  check(await page.locator('#operations details').count() === operations,
    `docs: all ${operations} operations of /api/openapi.json are listed`);
  await page.fill('#filter', 'get /api/v0/version');
  const version = page.locator('#operations details:not(.hidden)').first();
  await version.locator('summary').click();
  await version.getByRole('button', { name: 'Send' }).click();
  // The answer is written once it arrives: wait for it, not for the box.
  await version.locator('pre', { hasText: '"version": "raleph-' }).waitFor({ timeout: WAIT_MS });
  check(true, 'docs: a request sent from the page shows the node’s answer');
  check(problems.length === 0, `docs: no page or console error (${problems.join('; ')})`);
  await screenshot('docs');
} catch (error) {
  if (!failures.length) failures.push(error.message);
  console.log(`FAIL ${error.stack}`);
  // What the page showed when it failed, for whoever reads the log.
  console.log(`at ${page.url()}:\n${(await page.locator('main').textContent().catch(() => '')).slice(0, 3000)}`);
  await page.screenshot({ path: join(fixture.screenshots, 'failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
console.log(`${checks - failures.length} of ${checks} checks passed`);
process.exit(failures.length ? 1 : 0);
