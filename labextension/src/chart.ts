/**
 * The spend-over-time chart: a plain SVG step line of the session's dollars, no chart library.
 */

import { ISpendPoint } from './model';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** SVG polyline coordinates for `points` in a `width` × `height` box (y grows downwards). */
export function chartCoordinates(points: ISpendPoint[], width: number, height: number): string {
  if (points.length === 0) {
    return '';
  }
  const t0 = points[0].t;
  const span = Math.max(points[points.length - 1].t - t0, 1e-9);
  const top = Math.max(...points.map(p => p.usd), 1e-12);
  const x = (t: number) => (points.length === 1 ? width : ((t - t0) / span) * width);
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

/** A fresh SVG element drawing `points`. */
export function renderChart(points: ISpendPoint[], width = 240, height = 60): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'nbcost-chart');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  // Stretch to the panel's width; the line keeps its thickness (CSS vector-effect).
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  const title = document.createElementNS(SVG_NS, 'title');
  title.textContent = 'Session spend over time';
  svg.appendChild(title);
  const axis = document.createElementNS(SVG_NS, 'line');
  axis.setAttribute('x1', '0');
  axis.setAttribute('x2', String(width));
  axis.setAttribute('y1', String(height - 0.5));
  axis.setAttribute('y2', String(height - 0.5));
  axis.setAttribute('class', 'nbcost-chart-axis');
  svg.appendChild(axis);
  const line = document.createElementNS(SVG_NS, 'polyline');
  line.setAttribute('points', chartCoordinates(points, width, height - 1));
  line.setAttribute('class', 'nbcost-chart-line');
  svg.appendChild(line);
  return svg;
}
