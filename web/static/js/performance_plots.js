// The reliability plot as inline SVG built node by node (no chart library, no markup strings).

const SVG = 'http://www.w3.org/2000/svg';
const SIZE = 240;
const PAD = 34;

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

const x = (p) => PAD + p * (SIZE - 2 * PAD);
const y = (p) => SIZE - PAD - p * (SIZE - 2 * PAD);

/** Observed malignant fraction against mean predicted p_malignant per bin; dot area follows the bin's count. */
export function reliabilityPlot(bins, title) {
  const filled = bins.filter((bin) => bin.count > 0);
  const most = Math.max(1, ...filled.map((bin) => bin.count));
  const ticks = [0, 0.5, 1].flatMap((t) => [
    svg('text', { x: x(t), y: SIZE - PAD + 16, 'text-anchor': 'middle', class: 'plot-tick' }, String(t)),
    svg('text', { x: PAD - 6, y: y(t) + 4, 'text-anchor': 'end', class: 'plot-tick' }, String(t)),
  ]);
  const points = filled.map((bin) => svg('circle', {
    cx: x(bin.mean_predicted), cy: y(bin.observed), r: 3 + 6 * Math.sqrt(bin.count / most), class: 'plot-point',
  }, svg('title', {}, `${bin.count} cases: predicted ${bin.mean_predicted.toFixed(2)}, observed ${bin.observed.toFixed(2)}`)));
  const line = filled.length > 1 ? [svg('polyline', {
    points: filled.map((bin) => `${x(bin.mean_predicted)},${y(bin.observed)}`).join(' '), class: 'plot-line',
  })] : [];
  return svg('svg', { viewBox: `0 0 ${SIZE} ${SIZE}`, role: 'img', 'aria-label': title, class: 'reliability-plot' },
    svg('title', {}, title),
    svg('rect', { x: PAD, y: PAD, width: SIZE - 2 * PAD, height: SIZE - 2 * PAD, class: 'plot-frame' }),
    svg('line', { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: 'plot-diagonal' }),
    ...ticks, ...line, ...points,
    svg('text', { x: SIZE / 2, y: SIZE - 4, 'text-anchor': 'middle', class: 'plot-label' }, 'predicted p(malignant)'),
    svg('text', { x: 10, y: SIZE / 2, 'text-anchor': 'middle', class: 'plot-label',
      transform: `rotate(-90 10 ${SIZE / 2})` }, 'observed malignant'));
}
