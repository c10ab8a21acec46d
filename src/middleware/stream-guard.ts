/**
 * Open streams are re-authorised while they run: a revoked, disabled or expired key (or a
 * suspended tenant) must end the streams it opened within KEY_CACHE_SECONDS, not at the
 * task's terminal event. Neither the TaskObject nor the TenantHub knows about keys, so the
 * Worker that opened the stream watches it: it pipes the object's body through and asks
 * `stillAllowed` every `everyMs`; the first "no" closes the client's stream (EventSource
 * then reconnects and gets the refusal from the auth middleware) and ends the pipe from the
 * object, whose heartbeats then let the subscriber go (workerd does not run an object's
 * stream cancel across a fetch).
 *
 * The bytes go through a runtime pipe (pipeTo into an IdentityTransformStream), not a
 * JavaScript read loop: with a thousand subscribers of one task, a loop would wake this
 * isolate a thousand times per event; the pipe moves them without running our code. The
 * identity stream buffers nothing, so a client that stops reading leaves the bytes waiting
 * in the object, whose heartbeat then lets it go, exactly as without the guard in between.
 *
 * A failing check (D1 unreachable) keeps the stream: a blip must not cut every dashboard.
 *
 * `body` is an object's response body (a runtime stream), as every caller passes it: workerd's
 * pipe ends a pending read of such a stream on abort, but not of a JavaScript-built one.
 */
export function guardStream(
  body: ReadableStream<Uint8Array>,
  stillAllowed: () => Promise<boolean>,
  everyMs: number,
): ReadableStream<Uint8Array> {
  const { readable, writable } = new IdentityTransformStream();
  const revoked = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;

  const watch = () => {
    timer = setTimeout(async () => {
      if (ended) return;
      const allowed = await stillAllowed().catch(() => true);
      if (!allowed) revoked.abort("stream no longer authorised");
      else if (!ended) watch();
    }, everyMs);
  };
  watch();

  // preventAbort: on revocation the client's side is closed cleanly rather than errored; a
  // failing source still errors it. A revocation that lands while a write waits for a slow
  // client cannot close (a write is in flight): that client's stream errors instead, and an
  // EventSource reconnects all the same.
  body
    .pipeTo(writable, { signal: revoked.signal, preventAbort: true })
    .catch(async (error) => {
      if (revoked.signal.aborted) await writable.close().catch(() => writable.abort(error).catch(() => {}));
      else await writable.abort(error).catch(() => {});
    })
    .finally(() => {
      ended = true;
      clearTimeout(timer);
    });
  return readable;
}
