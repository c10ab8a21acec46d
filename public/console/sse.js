// @ts-check
/**
 * Live streams. EventSource cannot send headers: a short-lived stream token goes in ?token=.
 */
import { fail } from "./dom.js";
import { GatewayError } from "./http.js";

/**
 * Keeps an SSE stream open: mints a token, reconnects with a fresh one after an error or
 * expiry (resuming after the last event id), and stops on request or when `onEvent`
 * returns "stop" (a finished task).
 * @param {{
 *   path: string,
 *   mintToken: () => Promise<string>,
 *   onEvent: (data: any) => void | "stop",
 *   onState?: (state: "connecting" | "live" | "reconnecting" | "stopped") => void,
 * }} options
 */
export function liveStream(options) {
  /** @type {EventSource | null} */
  let source = null;
  let lastId = "";
  let stopped = false;
  let failures = 0;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  const state = options.onState ?? (() => {});

  const stop = () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    source?.close();
    source = null;
    state("stopped");
  };

  const connect = async () => {
    if (stopped) return;
    state(failures ? "reconnecting" : "connecting");
    let token;
    try {
      token = await options.mintToken();
    } catch (error) {
      if (error instanceof GatewayError && [401, 403, 404].includes(error.status)) {
        fail(error);
        stop();
        return;
      }
      retry();
      return;
    }
    if (stopped) return;
    const url = new URL(options.path, location.href);
    url.searchParams.set("token", token);
    if (lastId) url.searchParams.set("last_event_id", lastId);
    const es = new EventSource(url);
    source = es;
    es.addEventListener("open", () => {
      failures = 0;
      state("live");
    });
    es.addEventListener("status", (event) => {
      const message = /** @type {MessageEvent} */ (event);
      if (message.lastEventId) lastId = message.lastEventId;
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (options.onEvent(data) === "stop") stop();
    });
    es.addEventListener("error", () => {
      if (stopped || source !== es) return;
      // CONNECTING: the browser retries by itself. CLOSED: refused (e.g. the token expired).
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        retry();
      } else state("reconnecting");
    });
  };

  const retry = () => {
    if (stopped) return;
    failures++;
    state("reconnecting");
    timer = setTimeout(connect, Math.min(30_000, 500 * 2 ** Math.min(failures, 6)));
  };

  connect();
  return { stop };
}

export const TERMINAL = new Set(["SUCCESS", "FAILURE", "CANCEL"]);
