/** Bodies below this are sent as one string (with a Content-Length); larger ones stream. */
const STREAM_ABOVE_BYTES = 256 * 1024;

/**
 * Serializes a JSON body for the upstream without ever holding a second full copy of it:
 * one top-level field (and one list item) at a time. Requests at the upstream's own limits
 * (four 12 MiB data URIs) cross the Durable Object boundary as a stream, never inside an
 * RPC argument (32 MiB) or a storage row (2 MB).
 */
export function jsonBodyStream(body: Record<string, unknown>): string | ReadableStream<Uint8Array> {
  if (roughSize(body) <= STREAM_ABOVE_BYTES) return JSON.stringify(body);
  const parts = jsonParts(body);
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = parts.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
  });
}

function* jsonParts(body: Record<string, unknown>): Generator<string> {
  yield "{";
  let first = true;
  for (const [field, value] of Object.entries(body)) {
    if (value === undefined) continue;
    yield `${first ? "" : ","}${JSON.stringify(field)}:`;
    first = false;
    if (Array.isArray(value)) {
      yield "[";
      for (const [i, item] of value.entries()) yield `${i ? "," : ""}${JSON.stringify(item ?? null)}`;
      yield "]";
    } else {
      yield JSON.stringify(value);
    }
  }
  yield "}";
}

/** Cheap upper bound of the serialized size: the string lengths, without serializing. */
function roughSize(value: unknown): number {
  if (typeof value === "string") return value.length * 2 + 2;
  if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + roughSize(v) + 1, 2);
  if (value && typeof value === "object") {
    let sum = 2;
    for (const [k, v] of Object.entries(value)) sum += k.length + 3 + roughSize(v);
    return sum;
  }
  return 24;
}
