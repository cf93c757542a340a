// Small SVG charts of a series over time: lines for levels (queue depth, peers), bars for
// rates (messages per minute). Every point has a tooltip with its time and value.

import { h, svg } from './dom.js';

const WIDTH = 600;
const HEIGHT = 170;
const PAD = { left: 48, right: 12, top: 12, bottom: 24 };

// `points`: `[{time (unix seconds), value}]`, oldest first. `format` turns a value into text.
export function chart({ title, points, bars = false, format = (v) => v.toLocaleString() }) {
  const figure = h('figure', { class: 'chart' }, h('figcaption', {}, title,
    points.length ? h('strong', {}, ` ${format(points[points.length - 1].value)}`) : null));
  // A line needs two points; a bar chart shows even one.
  if (points.length < (bars ? 1 : 2)) {
    figure.append(h('p', { class: 'muted' }, 'Collecting samples: the chart fills in over the next minutes.'));
    return figure;
  }
  const t0 = points[0].time;
  const t1 = points[points.length - 1].time;
  const max = Math.max(1, ...points.map((p) => p.value));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - t0) / Math.max(1, t1 - t0)) * plotW;
  const y = (v) => PAD.top + plotH - (v / max) * plotH;
  const plot = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': title, class: bars ? 'bars' : 'line' });
  plot.append(
    svg('line', { class: 'axis', x1: PAD.left, y1: PAD.top + plotH, x2: WIDTH - PAD.right, y2: PAD.top + plotH }),
    svg('line', { class: 'grid', x1: PAD.left, y1: PAD.top, x2: WIDTH - PAD.right, y2: PAD.top }),
    svg('text', { x: PAD.left - 6, y: PAD.top + 4, 'text-anchor': 'end' }, format(max)),
    svg('text', { x: PAD.left - 6, y: PAD.top + plotH, 'text-anchor': 'end' }, '0'),
    svg('text', { x: PAD.left, y: HEIGHT - 6 }, clock(t0)),
    svg('text', { x: WIDTH - PAD.right, y: HEIGHT - 6, 'text-anchor': 'end' }, clock(t1)));
  const tip = (p) => svg('title', {}, `${clock(p.time)}: ${format(p.value)}`);
  if (bars) {
    // One slot per point, left to right: samples come at a steady pace.
    const slot = plotW / points.length;
    const width = Math.max(1, slot - 1);
    points.forEach((p, i) => {
      plot.append(svg('rect', { x: PAD.left + i * slot, y: y(p.value), width, height: Math.max(0, PAD.top + plotH - y(p.value)) }, tip(p)));
    });
  } else {
    const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.time).toFixed(1)},${y(p.value).toFixed(1)}`).join('');
    plot.append(svg('path', { d }));
    for (const p of points) plot.append(svg('circle', { cx: x(p.time), cy: y(p.value), r: 2.5 }, tip(p)));
  }
  figure.append(plot);
  return figure;
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}
