// Photos before they leave the phone: checked, downscaled in the browser, uploaded with progress, retried safely.

import { SkinDocError, networkError } from '/static/client/index.js';

// 1280 px on the long side keeps a 4:3 photo above the 800x600 teledermatology guideline while a photo
// from a phone camera (often 4000 px, 3-6 MB) shrinks to about 200 KB: seconds, not minutes, on slow data.
const TARGET_LONG_SIDE = 1280;
const JPEG_QUALITY = 0.85;
const RETRY_DELAYS_MS = [1000, 3000, 8000];

/**
 * The bytes to upload: a downscaled JPEG when the photo is larger than needed, the file as it is otherwise.
 * Never scaled below the server's minimum side; a photo already below it is refused here, with the same words
 * the server would use.
 */
export async function preparePhoto(file, limits) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    // Not decodable here (an unusual format, a damaged file): the server's check gives the precise reason.
    return { blob: file, width: null, height: null, note: null };
  }
  const { width, height } = bitmap;
  const shortSide = Math.min(width, height);
  if (shortSide < limits.min_side) {
    bitmap.close();
    throw new SkinDocError(422, 'image_too_small',
      `This photo is ${width}x${height} pixels; each side must be at least ${limits.min_side}. Take it closer or at a higher resolution.`);
  }
  const scale = Math.max(Math.min(1, TARGET_LONG_SIDE / Math.max(width, height)), limits.min_side / shortSide);
  if (scale >= 1 && file.size <= limits.max_upload_bytes && file.type === 'image/jpeg') {
    bitmap.close();
    return { blob: file, width, height, note: null };
  }
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(width * Math.min(1, scale));
  canvas.height = Math.round(height * Math.min(1, scale));
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', JPEG_QUALITY));
  return { blob, width: canvas.width, height: canvas.height, note: `resized from ${width}x${height}` };
}

function sendOnce(url, form, accessToken, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Authorization', `Bearer ${accessToken}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    xhr.onerror = () => reject(networkError());
    xhr.ontimeout = () => reject(networkError());
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: handled below */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(SkinDocError.fromProblem(xhr.status, body));
    };
    xhr.send(form);
  });
}

/**
 * Uploads one prepared photo. A retry sends the very same bytes: the server keeps one photo per content hash,
 * so an upload that reached the server but lost its answer is never stored twice.
 */
export async function uploadPhoto(session, consultationId, prepared, fields, onProgress) {
  const url = `/api/v1/consultations/${encodeURIComponent(consultationId)}/photos`;
  const build = () => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) if (value) form.append(name, value);
    form.append('photo', prepared.blob, prepared.blob.name || 'photo.jpg');
    return form;
  };
  let refreshed = false;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await sendOnce(url, build(), session.accessToken, onProgress);
    } catch (error) {
      if (error.status === 401 && !refreshed) { refreshed = true; await session.refresh(); continue; }
      if (!error.retryable || attempt >= RETRY_DELAYS_MS.length) throw error;
      onProgress(0);
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[attempt]));
    }
  }
}
