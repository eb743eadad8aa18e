// The photo-quality measures of triage/photo_quality.py, taken in the browser before upload so that the patient
// can retake a blurred, dark or distant photo at once. The server measures again and its verdict is the one
// that counts; the limits come from the page (the server's own fitted thresholds).

function greySquare(bitmap, side) {
  // Like the server, which measures its 256-pixel thumbnail squashed to a side x side square.
  const scale = Math.min(1, 256 / Math.max(bitmap.width, bitmap.height));
  const thumb = document.createElement('canvas');
  thumb.width = Math.max(1, Math.round(bitmap.width * scale));
  thumb.height = Math.max(1, Math.round(bitmap.height * scale));
  thumb.getContext('2d').drawImage(bitmap, 0, 0, thumb.width, thumb.height);
  const square = document.createElement('canvas');
  square.width = side;
  square.height = side;
  const context = square.getContext('2d', { willReadFrequently: true });
  context.drawImage(thumb, 0, 0, side, side);
  const { data } = context.getImageData(0, 0, side, side);
  const grey = new Float64Array(side * side);
  const saturation = new Float64Array(side * side);
  for (let i = 0; i < grey.length; i += 1) {
    const [r, g, b] = [data[4 * i], data[4 * i + 1], data[4 * i + 2]];
    // Pillow's "L" conversion (ITU-R 601-2 luma), rounded to a byte.
    grey[i] = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) / 255;
    const top = Math.max(r, g, b);
    saturation[i] = (top - Math.min(r, g, b)) / Math.max(top, 1);
  }
  return { grey, saturation };
}

function meanGradient(grey, side) {
  let down = 0;
  let across = 0;
  for (let y = 0; y < side; y += 1) {
    for (let x = 0; x < side; x += 1) {
      const v = grey[y * side + x];
      if (y + 1 < side) down += Math.abs(grey[(y + 1) * side + x] - v);
      if (x + 1 < side) across += Math.abs(grey[y * side + x + 1] - v);
    }
  }
  const pairs = (side - 1) * side;
  return down / pairs + across / pairs;
}

function sharpness(grey, side) {
  const halfSide = side / 2;
  const half = new Float64Array(halfSide * halfSide);
  for (let y = 0; y < halfSide; y += 1) {
    for (let x = 0; x < halfSide; x += 1) {
      const at = (yy, xx) => grey[yy * side + xx];
      half[y * halfSide + x] = (at(2 * y, 2 * x) + at(2 * y + 1, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x + 1)) / 4;
    }
  }
  const coarse = meanGradient(half, halfSide);
  if (coarse <= 1e-9) return 0;
  return Math.min(1, Math.max(0, (2 * meanGradient(grey, side)) / coarse - 1));
}

function otsu(values) {
  const bins = 64;
  const hist = new Array(bins).fill(0);
  for (const v of values) hist[Math.min(bins - 1, Math.floor(v * bins))] += 1;
  const centre = (i) => (i + 0.5) / bins;
  const total = values.length;
  const meanTotal = hist.reduce((sum, n, i) => sum + n * centre(i), 0);
  let weight = 0;
  let mean = 0;
  let best = -1;
  let threshold = 0.5;
  for (let i = 0; i < bins; i += 1) {
    weight += hist[i];
    mean += hist[i] * centre(i);
    const between = ((meanTotal * weight - mean * total) ** 2) / Math.max(weight * (total - weight), 1);
    if (between > best) { best = between; threshold = centre(i); }
  }
  return threshold;
}

function percentile(sorted, q) {
  const at = (q / 100) * (sorted.length - 1);
  const low = Math.floor(at);
  const high = Math.min(sorted.length - 1, low + 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (at - low);
}

export function measure({ grey, saturation }, config) {
  const side = config.analysis_side;
  const lit = [];
  let litSaturation = 0;
  grey.forEach((v, i) => { if (v > config.outside_field) { lit.push(v); litSaturation += saturation[i]; } });
  const threshold = lit.length >= 16 ? otsu(lit) : -1;
  const rows = [];
  const cols = [];
  let edgeLesion = 0;
  let edgeCount = 0;
  let white = 0;
  for (let y = 0; y < side; y += 1) {
    for (let x = 0; x < side; x += 1) {
      const v = grey[y * side + x];
      const lesion = v > config.outside_field && v < threshold;
      const edge = y < config.edge_band || x < config.edge_band || y >= side - config.edge_band || x >= side - config.edge_band;
      if (lesion) { rows.push(y); cols.push(x); }
      if (edge) { edgeCount += 1; if (lesion) edgeLesion += 1; }
      if (v >= 253 / 255) white += 1;
    }
  }
  rows.sort((a, b) => a - b);
  cols.sort((a, b) => a - b);
  const span = (v) => percentile(v, 95) - percentile(v, 5);
  return {
    sharpness: sharpness(grey, side),
    brightness: lit.length ? lit.reduce((a, b) => a + b, 0) / lit.length : 0,
    clipped: white / grey.length,
    colourfulness: lit.length ? litSaturation / lit.length : 0,
    lesion_extent: rows.length < 2 ? 0 : Math.max(span(rows), span(cols)) / (side - 1),
    lesion_at_edge: edgeLesion / edgeCount,
  };
}

export function problems(m, limits) {
  const found = [];
  if (m.sharpness < limits.sharpness_min) found.push('blurred');
  if (m.brightness < limits.brightness_min) found.push('too_dark');
  if (m.brightness > limits.brightness_max || m.clipped > limits.clipped_max) found.push('too_bright');
  if (m.colourfulness < limits.colourfulness_min) found.push('no_colour');
  if (m.lesion_extent < limits.lesion_extent_min) found.push('lesion_too_small');
  if (m.lesion_at_edge > limits.lesion_at_edge_max) found.push('lesion_cut_off');
  return found;
}

/** { measures, problems, advice } for a photo, or null when the browser cannot decode it. */
export async function checkPhoto(blob, config) {
  if (!config) return null;
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image' });
  } catch {
    return null;
  }
  const square = greySquare(bitmap, config.analysis_side);
  bitmap.close();
  const measures = measure(square, config);
  const found = problems(measures, config.limits);
  return { measures, problems: found, advice: found.map((p) => config.advice[p]) };
}
