// Files in the page: reading a picked File one chunk at a time, the thumbnail of a photo (made
// here with a canvas, carried inside the encrypted file message), sizes in words, and which
// chunks a node still misses. Sealing, hashing, the chunk list and opening are the wasm
// module's (FileSealer, FileOpener); nothing here touches a key.

/** Files larger than this are refused before upload unless the node names its own limit. */
export const DEFAULT_FILE_LIMIT = 100 * 1024 * 1024;
/** Largest thumbnail: the descriptor allows 16 KiB with its media type; keep a margin. */
const PREVIEW_BYTES = 15 * 1024;

/** Bytes `start..end` of a File or Blob: one chunk in memory, never the whole file. */
export async function readSlice(file, start, end) {
  return new Uint8Array(await file.slice(start, end).arrayBuffer());
}

/** A size for people: "820 bytes", "1.4 MB"-like with binary units. */
export function sizeText(n) {
  n = Number(n);
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB'];
  let u = -1;
  do {
    n /= 1024;
    u++;
  } while (n >= 1024 && u < units.length - 1);
  return `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[u]}`;
}

/** What kind of file a media type is, for the icon and the way it opens. */
export function kindOf(mediaType) {
  const t = String(mediaType || '');
  if (t.startsWith('image/')) return 'image';
  if (t.startsWith('audio/')) return 'audio';
  if (t.startsWith('video/')) return 'video';
  return 'file';
}

/** A small JPEG of a picked image (≤ 15 KiB), or null when the browser cannot draw it. */
export async function thumbnail(file) {
  if (kindOf(file.type) !== 'image' || typeof createImageBitmap !== 'function') return null;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (_) {
    return null; // A format this browser does not decode (HEIC on some phones): no preview.
  }
  try {
    for (const edge of [320, 200, 120]) {
      const scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement('canvas');
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      const g = canvas.getContext('2d');
      // JPEG has no transparency: a white ground rather than black.
      g.fillStyle = '#fff';
      g.fillRect(0, 0, canvas.width, canvas.height);
      g.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      for (const quality of [0.7, 0.5, 0.3]) {
        const blob = await new Promise((done) => canvas.toBlob(done, 'image/jpeg', quality));
        if (blob && blob.size <= PREVIEW_BYTES) {
          return { type: 'image/jpeg', bytes: new Uint8Array(await blob.arrayBuffer()), width: canvas.width, height: canvas.height };
        }
      }
    }
    return null;
  } finally {
    bitmap.close();
  }
}

/** The chunk indexes a node's FileInfo names as missing (the first 64 at most: ask again
 * after sending them); every chunk when it names none but the file is not complete. */
export function missingChunks(info, count) {
  if (info.state === 'complete') return [];
  const named = Array.isArray(info.missing) ? info.missing.filter((i) => Number.isInteger(i) && i >= 0 && i < count) : [];
  return named.length ? named : Array.from({ length: count }, (_, i) => i);
}

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
