/**
 * Open streams are re-authorised while they run: a revoked, disabled or expired key (or a
 * suspended tenant) must end the streams it opened within KEY_CACHE_SECONDS, not at the
 * task's terminal event. Neither the TaskObject nor the TenantHub knows about keys, so the
 * Worker that opened the stream watches it: it pumps the object's body through and asks
 * `stillAllowed` every `everyMs`; the first "no" closes the client's stream (EventSource
 * then reconnects and gets the refusal from the auth middleware) and cancels the object's
 * side, which drops the subscriber there.
 *
 * A failing check (D1 unreachable) keeps the stream: a blip must not cut every dashboard.
 */
export function guardStream(
  body: ReadableStream<Uint8Array>,
  stillAllowed: () => Promise<boolean>,
  everyMs: number,
): ReadableStream<Uint8Array> {
  const source = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;

  const end = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    source.cancel("stream no longer authorised").catch(() => {});
    try {
      controller.close();
    } catch {
      // already closed or errored by the client side
    }
  };

  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const watch = () => {
          timer = setTimeout(async () => {
            if (ended) return;
            const allowed = await stillAllowed().catch(() => true);
            if (!allowed) end(controller);
            else if (!ended) watch();
          }, everyMs);
        };
        watch();
      },
      async pull(controller) {
        if (ended) return;
        try {
          const { done, value } = await source.read();
          if (ended) return;
          if (done) {
            ended = true;
            clearTimeout(timer);
            controller.close();
          } else controller.enqueue(value);
        } catch (error) {
          ended = true;
          clearTimeout(timer);
          controller.error(error);
        }
      },
      cancel(reason) {
        ended = true;
        clearTimeout(timer);
        return source.cancel(reason);
      },
      // No read-ahead: a client that stops reading leaves the bytes waiting in the object,
      // whose heartbeat then lets it go, exactly as without the guard in between.
    },
    { highWaterMark: 0 },
  );
}
