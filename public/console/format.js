// @ts-check
/** Showing times, ids and media URLs. */

/** @param {string | number | null | undefined} value ISO string or unix seconds */
export function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** @param {string} id */
export const shortId = (id) => (id.length > 16 ? `${id.slice(0, 9)}…${id.slice(-6)}` : id);

/** Only http(s) and data:image URLs are shown as media. @param {unknown} url */
export function safeUrl(url) {
  if (typeof url !== "string") return null;
  if (/^data:(image|video)\//i.test(url)) return url;
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}
