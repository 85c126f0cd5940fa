/**
 * The spend-over-time chart: a plain SVG step line of the session's dollars, no chart library.
 * Axis labels are HTML beside the SVG (which stretches to the panel's width, so SVG text would
 * stretch with it); each point has a hover band whose tooltip gives its time and total.
 */

import { sumDecimals } from './decimal';
import { decimalToNumber, formatUsd } from './format';
import { ISpendPoint } from './model';

const SVG_NS = 'http://www.w3.org/2000/svg';

function scaleX(points: ISpendPoint[], width: number): (t: number) => number {
  const t0 = points[0].t;
  const span = Math.max(points[points.length - 1].t - t0, 1e-9);
  return t => (points.length === 1 ? width : ((t - t0) / span) * width);
}

/** SVG polyline coordinates for `points` in a `width` × `height` box (y grows downwards). */
export function chartCoordinates(points: ISpendPoint[], width: number, height: number): string {
  if (points.length === 0) {
    return '';
  }
  const top = Math.max(...points.map(p => p.usd), 1e-12);
  const x = scaleX(points, width);
  const y = (usd: number) => height - (usd / top) * height;
  const coords: string[] = [];
  let previousY = y(points[0].usd);
  coords.push(`${x(points[0].t).toFixed(1)},${previousY.toFixed(1)}`);
  for (const point of points.slice(1)) {
    // A step: spend stays flat until the next total arrives.
    const px = x(point.t).toFixed(1);
    coords.push(`${px},${previousY.toFixed(1)}`);
    previousY = y(point.usd);
    coords.push(`${px},${previousY.toFixed(1)}`);
  }
  return coords.join(' ');
}

/** A clock time for an axis or tooltip ("14:03:07", the browser's time zone). */
export function clockTime(t: number): string {
  const date = new Date(t * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

/** The hover band of each point: from halfway to its neighbours, with its tooltip text. */
export function chartBands(
  points: ISpendPoint[],
  width: number
): { x: number; width: number; text: string }[] {
  if (points.length === 0) {
    return [];
  }
  const x = scaleX(points, width);
  const xs = points.map(p => x(p.t));
  return points.map((point, i) => {
    const left = i === 0 ? 0 : (xs[i - 1] + xs[i]) / 2;
    const right = i === points.length - 1 ? width : (xs[i] + xs[i + 1]) / 2;
    const cost = point.cost ?? String(point.usd);
    return { x: left, width: right - left, text: `${clockTime(point.t)} · ${formatUsd(cost)}` };
  });
}

/** The highest point's dollars, as text for the y axis. */
export function chartTop(points: ISpendPoint[]): string {
  let top: ISpendPoint | null = null;
  for (const point of points) {
    if (!top || point.usd > top.usd) {
      top = point;
    }
  }
  return top ? formatUsd(top.cost ?? String(top.usd)) : formatUsd('0');
}

function div(className: string, text?: string): HTMLDivElement {
  const node = document.createElement('div');
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** The chart: y labels (top and $0), the SVG, and x labels (first and last time). */
export function renderChart(points: ISpendPoint[], width = 240, height = 60): HTMLElement {
  const box = div('nbcost-chart-box');
  const yAxis = div('nbcost-chart-y');
  yAxis.appendChild(div('nbcost-chart-label', chartTop(points)));
  yAxis.appendChild(div('nbcost-chart-label', formatUsd('0')));
  box.appendChild(yAxis);

  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'nbcost-chart');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  // Stretch to the panel's width; the line keeps its thickness (CSS vector-effect).
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  const title = document.createElementNS(SVG_NS, 'title');
  title.textContent = 'Session spend over time';
  svg.appendChild(title);
  for (const [x1, y1, x2, y2] of [
    [0, height - 0.5, width, height - 0.5],
    [0.5, 0, 0.5, height]
  ]) {
    const axis = document.createElementNS(SVG_NS, 'line');
    axis.setAttribute('x1', String(x1));
    axis.setAttribute('y1', String(y1));
    axis.setAttribute('x2', String(x2));
    axis.setAttribute('y2', String(y2));
    axis.setAttribute('class', 'nbcost-chart-axis');
    svg.appendChild(axis);
  }
  const line = document.createElementNS(SVG_NS, 'polyline');
  line.setAttribute('points', chartCoordinates(points, width, height - 1));
  line.setAttribute('class', 'nbcost-chart-line');
  svg.appendChild(line);
  for (const band of chartBands(points, width)) {
    const rect = document.createElementNS(SVG_NS, 'rect');
    rect.setAttribute('class', 'nbcost-chart-band');
    rect.setAttribute('x', band.x.toFixed(1));
    rect.setAttribute('y', '0');
    rect.setAttribute('width', Math.max(band.width, 0.5).toFixed(1));
    rect.setAttribute('height', String(height));
    const tip = document.createElementNS(SVG_NS, 'title');
    tip.textContent = band.text;
    rect.appendChild(tip);
    svg.appendChild(rect);
  }
  box.appendChild(svg);

  const xAxis = div('nbcost-chart-x');
  if (points.length) {
    xAxis.appendChild(div('nbcost-chart-label', clockTime(points[0].t)));
    xAxis.appendChild(div('nbcost-chart-label', clockTime(points[points.length - 1].t)));
  }
  box.appendChild(xAxis);
  return box;
}

/** Points for a notebook without a live session: its saved cells' costs, summed over time. */
export function savedPoints(records: { end?: string; cost_usd: string }[]): ISpendPoint[] {
  const dated = records
    .map(record => ({ t: Date.parse(record.end ?? '') / 1000, cost: record.cost_usd }))
    .filter(point => isFinite(point.t))
    .sort((a, b) => a.t - b.t);
  const points: ISpendPoint[] = [];
  let units = 0;
  let total = '0';
  for (const point of dated) {
    units += decimalToNumber(point.cost);
    total = sumDecimals([total, point.cost]);
    points.push({ t: point.t, usd: units, cost: total });
  }
  return points;
}
