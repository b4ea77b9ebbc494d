// @ts-check
// Pure helpers of the Files tab: which files are shown, and how each is previewed.

/** The most bytes of a text file the preview reads (the rest: download it). */
export const TEXT_PREVIEW_BYTES = 64 * 1024;

/** Images the browser shows as they are, up to this size. */
export const IMAGE_PREVIEW_BYTES = 32 * 1024 * 1024;

const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"]);
const TEXT_EXTENSIONS = new Set(["txt", "log", "md", "json", "jsonl", "yaml", "yml", "toml", "ini", "cfg", "csv", "tsv", "py", "sh", "patch", "diff", "xml", "html", "js", "ts", "c", "h", "cpp", "rs", "go", "java", "r", "sql", "out", "err"]);
const BLOB_NAME = /^[0-9a-f]{64}\.[a-z0-9]+$/;

/**
 * Whether a run file holds the bytes of a logged value (an image or tensor a history row
 * names, stored as `<sha256>.<ext>`) rather than a file the run saved.
 * @param {string} path
 */
export function isValueBlob(path) {
  return BLOB_NAME.test(path);
}

/**
 * How the Files tab previews a file: "image", "text", or null (download only).
 * @param {string} path
 * @param {string} contentType
 * @param {number} size
 * @returns {"image" | "text" | null}
 */
export function previewKind(path, contentType, size) {
  const type = (contentType || "").split(";")[0].trim().toLowerCase();
  if (IMAGE_TYPES.has(type)) return size <= IMAGE_PREVIEW_BYTES ? "image" : null;
  if (type.startsWith("text/") || type === "application/json" || type === "application/x-ndjson") return "text";
  const base = path.split("/").pop() || "";
  const dot = base.lastIndexOf(".");
  const ext = dot > 0 ? base.slice(dot + 1).toLowerCase() : "";
  if (TEXT_EXTENSIONS.has(ext)) return "text";
  if (["png", "jpg", "jpeg", "gif", "webp"].includes(ext)) return size <= IMAGE_PREVIEW_BYTES ? "image" : null;
  return null;
}

/**
 * The text of a preview from the bytes read (at most TEXT_PREVIEW_BYTES of `size`):
 * decoded as UTF-8 (a character cut at the end is dropped), with whether it was cut.
 * `binary` is true when the bytes do not look like text (NUL bytes).
 * @param {Uint8Array} bytes
 * @param {number} size
 * @returns {{text: string, truncated: boolean, binary: boolean}}
 */
export function previewText(bytes, size) {
  const head = bytes.subarray(0, TEXT_PREVIEW_BYTES);
  const binary = head.includes(0);
  let text = new TextDecoder("utf-8", { fatal: false }).decode(head, { stream: head.length < size });
  if (text.endsWith("\uFFFD") && head.length < size) text = text.slice(0, -1);
  return { text, truncated: head.length < size, binary };
}

/**
 * The files to list, by path, saved files first: logged values' blobs only when asked.
 * @template {{path: string}} F
 * @param {F[]} files
 * @param {boolean} withBlobs
 * @returns {F[]}
 */
export function listedFiles(files, withBlobs) {
  return files.filter((f) => withBlobs || !isValueBlob(f.path)).sort((a, b) => Number(isValueBlob(a.path)) - Number(isValueBlob(b.path)) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
