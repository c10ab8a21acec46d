// @ts-check
/**
 * Shared by every console page: the admin token (sessionStorage only, sent as an
 * Authorization header, never put in a URL), API calls that read the gateway's one error
 * shape {"error":{"code","message"}}, human messages for the errors that matter (expired
 * token, 402, 429), a tiny DOM builder, money formatting and live SSE streams.
 */

const ADMIN_TOKEN = "mjg.console.adminToken";
const PLAY_KEYS = "mjg.console.playgroundKeys";
const PLAY_KEY = "mjg.console.playgroundKey";

export const session = {
  adminToken: () => sessionStorage.getItem(ADMIN_TOKEN),
  /** @param {string} token */
  setAdminToken: (token) => sessionStorage.setItem(ADMIN_TOKEN, token),
  /** @returns {PlaygroundKey[]} keys created or pasted in this tab, newest first */
  playgroundKeys: () => {
    try {
      return JSON.parse(sessionStorage.getItem(PLAY_KEYS) ?? "[]");
    } catch {
      return [];
    }
  },
  /** @param {PlaygroundKey} key */
  rememberPlaygroundKey: (key) => {
    const keys = session.playgroundKeys().filter((k) => k.secret !== key.secret);
    sessionStorage.setItem(PLAY_KEYS, JSON.stringify([key, ...keys].slice(0, 20)));
    sessionStorage.setItem(PLAY_KEY, key.secret);
  },
  playgroundKey: () => sessionStorage.getItem(PLAY_KEY),
  /** @param {string | null} secret */
  setPlaygroundKey: (secret) =>
    secret ? sessionStorage.setItem(PLAY_KEY, secret) : sessionStorage.removeItem(PLAY_KEY),
  /** @param {string} name */
  get: (name) => sessionStorage.getItem(`mjg.console.${name}`),
  /** @param {string} name @param {string | null} value */
  set: (name, value) =>
    value === null
      ? sessionStorage.removeItem(`mjg.console.${name}`)
      : sessionStorage.setItem(`mjg.console.${name}`, value),
  clear: () => {
    for (const name of Object.keys(sessionStorage)) {
      if (name.startsWith("mjg.console.")) sessionStorage.removeItem(name);
    }
  },
};

/** @typedef {{ secret: string, label: string, tenantId?: string, keyId?: string }} PlaygroundKey */

/** An error answered by the gateway (or the network), with what the console needs to explain it. */
export class GatewayError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the gateway could not be reached
   * @param {string} code the gateway's error.code
   * @param {string} message the gateway's error.message
   * @param {{ retryAfter?: number | null, requestId?: string | null }} [extra]
   */
  constructor(status, code, message, extra = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = extra.retryAfter ?? null;
    this.requestId = extra.requestId ?? null;
  }
}

/**
 * Calls the gateway. `auth: "admin"` sends the admin token; a string sends that tenant key.
 * Resolves to the parsed JSON body (or the Response with `raw`); rejects with GatewayError.
 * @param {string} path
 * @param {{ method?: string, body?: unknown, auth?: "admin" | string | null, raw?: boolean }} [options]
 * @returns {Promise<any>}
 */
export async function call(path, options = {}) {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  const credential = options.auth === "admin" ? session.adminToken() : options.auth;
  if (credential) headers.authorization = `Bearer ${credential}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method: options.method ?? "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
    });
  } catch {
    throw new GatewayError(0, "network_error", "The gateway could not be reached: check your connection.");
  }
  if (response.ok) return options.raw ? response : response.status === 204 ? null : response.json();
  const error = await errorFrom(response);
  if (options.auth === "admin" && error.status === 401) onAdminRejected(error);
  throw error;
}

/** @param {Response} response */
async function errorFrom(response) {
  const text = await response.text().catch(() => "");
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let requestId = response.headers.get("x-request-id");
  try {
    const body = JSON.parse(text);
    const error = body && typeof body.error === "object" ? body.error : body;
    if (error?.code !== undefined) code = String(error.code);
    if (typeof error?.message === "string") message = error.message;
    if (typeof error?.request_id === "string") requestId = error.request_id;
  } catch {
    if (text && text.length < 300) message = text;
  }
  const retry = Number(response.headers.get("retry-after"));
  return new GatewayError(response.status, code, message, {
    retryAfter: Number.isFinite(retry) && retry > 0 ? retry : null,
    requestId,
  });
}

/** @param {string} path @param {{ method?: string, body?: unknown, raw?: boolean }} [options] */
export const admin = (path, options = {}) => call(path, { ...options, auth: "admin" });

/**
 * A sentence for a person: what went wrong and what to do about it.
 * @param {unknown} error
 */
export function explain(error) {
  if (!(error instanceof GatewayError)) return error instanceof Error ? error.message : String(error);
  const retry = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again shortly.";
  switch (error.code) {
    case "admin_unauthorized":
      return "The admin token was rejected (wrong or expired). Log in again.";
    case "insufficient_balance":
      return "Insufficient balance (402): top up this tenant on the Tenants & keys page.";
    case "key_budget_exceeded":
      return "This key's daily or monthly spend cap is reached (402): raise the cap or use another key.";
    case "too_many_tasks":
      return `Too many tasks in flight for this key or tenant (429).${retry}`;
    case "invalid_api_key":
    case "missing_api_key":
      return "The tenant key is not valid (401): paste another key or create one.";
    case "key_revoked":
      return "The tenant key has been revoked (401): create a new key.";
    case "key_expired":
      return "The tenant key has expired (401): create a new key or extend its expiry.";
    case "key_disabled":
      return "The tenant key is disabled (403): enable it on the Tenants & keys page.";
    case "insufficient_scope":
      return `${error.message} (403): add the scope to the key on the Tenants & keys page.`;
    case "too_many_auth_failures":
      return `Too many failed logins or keys from this address (429).${retry}`;
    case "tenant_suspended":
      return "The tenant is suspended (403): activate it on the Tenants & keys page.";
    case "stream_token_expired":
      return "The live stream's token expired; reconnecting with a new one.";
    case "network_error":
      return error.message;
  }
  if (error.status === 429) return `Rate limited (429): ${error.message}.${retry}`;
  const id = error.requestId ? ` · request ${error.requestId}` : "";
  return `${error.message} (${error.status} ${error.code}${id})`;
}

/** The admin token stopped working mid-session: back to the login form, with the reason. */
function onAdminRejected(/** @type {GatewayError} */ error) {
  sessionStorage.removeItem(ADMIN_TOKEN);
  showLogin(explain(error));
}

// ---------------------------------------------------------------------------------------
// DOM

/**
 * Builds an element. Text is always set as text (never parsed as HTML).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any> | null} [attrs] `class`, `on<event>`, `dataset`, properties or attributes
 * @param {...(Node | string | number | null | undefined | false | (Node | string | null | undefined | false)[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function")
      node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== "string") /** @type {any} */ (node)[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** @param {Node} node @param {any[]} children */
function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/**
 * @template {HTMLElement} T
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {T}
 */
export function $(selector, root = document) {
  const node = root.querySelector(selector);
  if (!node) throw new Error(`console: ${selector} is missing from the page`);
  return /** @type {T} */ (node);
}

/** Replaces an element's children. @param {Element} node @param {...any} children */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/**
 * A message at the top of the page: errors stay until dismissed, the rest fade.
 * @param {string} message
 * @param {"error" | "ok" | "info"} [kind]
 */
export function toast(message, kind = "error") {
  const region = $("#toasts");
  const item = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", null, message),
    h(
      "button",
      { class: "icon", type: "button", "aria-label": "Dismiss", onclick: () => item.remove() },
      "×",
    ),
  );
  region.prepend(item);
  while (region.children.length > 4) region.lastElementChild?.remove();
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
  return item;
}

/** Shows an error from a failed call. @param {unknown} error */
export const fail = (error) => toast(explain(error), "error");

/**
 * Runs an async action from a button or form, disabling it meanwhile; errors become toasts.
 * @param {HTMLButtonElement | HTMLFormElement | null} control
 * @param {() => Promise<unknown>} action
 */
export async function busy(control, action) {
  const buttons = control instanceof HTMLFormElement ? [...control.querySelectorAll("button")] : [control];
  for (const b of buttons) if (b) b.disabled = true;
  try {
    return await action();
  } catch (error) {
    fail(error);
    return undefined;
  } finally {
    for (const b of buttons) if (b) b.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Money and time (integer micro-USD; formatting only here)

/**
 * $0.05504, $10.00, -$0.066048: exact, at least two decimals, no float arithmetic.
 * @param {number | null | undefined} micros
 */
export function usd(micros) {
  if (micros === null || micros === undefined) return "—";
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  let fraction = String(abs % 1_000_000).padStart(6, "0");
  while (fraction.length > 2 && fraction.endsWith("0")) fraction = fraction.slice(0, -1);
  return `${sign}$${Math.floor(abs / 1_000_000).toLocaleString("en-US")}.${fraction}`;
}

/** The task object's `cost` is USD as a number (like the upstream's): to micro-USD. @param {number} cost */
export const costMicros = (cost) => Math.round(Number(cost) * 1_000_000);

/**
 * "12.5" → 12500000. Returns null when the text is not a non-negative amount.
 * @param {string} text
 */
export function parseUsd(text) {
  const match = /^\s*\$?\s*(\d{1,12})(?:\.(\d{0,6}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 1_000_000 + Number((match[2] ?? "").padEnd(6, "0"));
}

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

// ---------------------------------------------------------------------------------------
// Live streams (EventSource cannot send headers: a short-lived stream token goes in ?token=)

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

// ---------------------------------------------------------------------------------------
// Page shell: header and nav, toasts, login form, logout. Every page's HTML holds only its
// <title>, its script and its own <main id="app" hidden>; boot() renders the rest before it.

/** The console's pages as [<body data-page>, href, nav label]. */
const PAGES = [
  ["tenants", "/console/", "Tenants & keys"],
  ["tasks", "/console/tasks", "Live tasks"],
  ["playground", "/console/playground", "Playground"],
  ["finance", "/console/finance", "Finance"],
];

/** Puts the header (nav with the current page marked), the toasts and the login form before <main>. */
function renderShell() {
  const page = document.body.dataset.page;
  const logout = () => {
    session.clear();
    location.assign("/console/");
  };
  document.body.prepend(
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "/console/" }, "MJ gateway"),
      h(
        "nav",
        { "aria-label": "Console" },
        PAGES.map(([name, href, label]) =>
          h("a", { href, dataset: { nav: name }, "aria-current": name === page && "page" }, label),
        ),
        h("a", { href: "/docs" }, "API docs"),
      ),
      h(
        "button",
        { id: "logout", class: "link small", type: "button", hidden: true, onclick: logout },
        "Log out",
      ),
    ),
    h("div", { id: "toasts", class: "toasts", "aria-live": "polite" }),
    h(
      "section",
      { id: "login", class: "login", hidden: true },
      h(
        "form",
        { id: "login-form", class: "card", autocomplete: "off" },
        h("h1", null, "Operator console"),
        h(
          "p",
          { class: "muted" },
          "Paste the gateway's admin token (",
          h("code", null, "ADMIN_TOKEN"),
          "; ",
          h("code", null, "npm start"),
          " prints it). It stays in this tab's sessionStorage and is sent as an Authorization header, never in a URL.",
        ),
        h(
          "label",
          null,
          "Admin token ",
          h("input", { id: "login-token", type: "password", autocomplete: "off", required: true }),
        ),
        h("p", { id: "login-error", class: "error", role: "alert", hidden: true }),
        h("button", { type: "submit" }, "Log in"),
      ),
    ),
  );
}

/** @param {string} [message] */
function showLogin(message) {
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  const error = $("#login-error");
  error.textContent = message ?? "";
  error.hidden = !message;
  $("#login-token").focus();
}

/** @param {string} token */
async function checkAdminToken(token) {
  const response = await fetch("/admin/tenants?limit=1", {
    headers: { authorization: `Bearer ${token}` },
    cache: "no-store",
  }).catch(() => null);
  if (!response) throw new GatewayError(0, "network_error", "The gateway could not be reached.");
  if (!response.ok) throw await errorFrom(response);
}

/**
 * Starts a page: asks for the admin token unless this tab has a working one, then runs `init`.
 * @param {() => Promise<void> | void} init
 */
export function boot(init) {
  renderShell();
  const start = async () => {
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = false;
    try {
      await init();
    } catch (error) {
      fail(error);
    }
  };
  /** @type {HTMLFormElement} */ ($("#login-form")).addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($("#login-token"));
    const token = input.value.trim();
    try {
      await checkAdminToken(token);
    } catch (error) {
      showLogin(
        error instanceof GatewayError && error.status === 401
          ? "That token was rejected: check ADMIN_TOKEN (npm start prints it)."
          : explain(error),
      );
      return;
    }
    input.value = "";
    session.setAdminToken(token);
    // A fresh start, so every part of the page loads with the new token.
    if (!$("#app").dataset.started) {
      $("#app").dataset.started = "1";
      await start();
    } else location.reload();
  });
  const token = session.adminToken();
  if (!token) {
    showLogin();
    return;
  }
  checkAdminToken(token).then(
    async () => {
      $("#app").dataset.started = "1";
      await start();
    },
    (error) => {
      if (error instanceof GatewayError && error.status === 401) {
        sessionStorage.removeItem(ADMIN_TOKEN);
        showLogin("Your admin session has expired or the token changed: log in again.");
      } else showLogin(explain(error));
    },
  );
}

/**
 * Every tenant (pages through GET /admin/tenants).
 * @returns {Promise<any[]>}
 */
export async function allTenants() {
  const tenants = [];
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const query = new URLSearchParams({ limit: "500" });
    if (cursor) query.set("cursor", cursor);
    const body = await admin(`/admin/tenants?${query}`);
    tenants.push(...body.data);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return tenants;
}

/**
 * Fills a <select> with tenants; keeps the selection in sessionStorage across pages.
 * @param {HTMLSelectElement} select
 * @param {any[]} tenants
 * @param {{ any?: string }} [options] a label for an "all tenants" choice
 */
export function tenantOptions(select, tenants, options = {}) {
  const current = select.value || session.get("tenant") || "";
  fill(
    select,
    options.any !== undefined ? h("option", { value: "" }, options.any) : null,
    tenants.map((t) => h("option", { value: t.id }, `${t.name} (${shortId(t.id)})`)),
  );
  if (tenants.some((t) => t.id === current)) select.value = current;
  else if (options.any === undefined && tenants[0]) select.value = tenants[0].id;
}

/**
 * The gateway's actions, by their API names: mirrors ACTIONS in src/domain/actions.ts (the console
 * is served as-is, without a build step).
 */
export const ACTIONS = [
  "imagine",
  "edits",
  "blend",
  "describe",
  "upscale",
  "variation",
  "high-variation",
  "low-variation",
  "reroll",
  "zoom",
  "pan",
  "inpaint",
  "modal",
  "video",
  "remix-strong",
  "remix-subtle",
];

/**
 * Key scopes, by their API names: mirrors SCOPES in src/domain/scopes.ts. A key issued without
 * scopes has them all.
 */
export const SCOPES = [
  { name: "generate", label: "Generate", hint: "submit generations (allowed actions narrow it)" },
  { name: "read", label: "Read tasks", hint: "GET /v1/midjourney/{id}, /v1/tasks/{id}" },
  { name: "stream", label: "Stream", hint: "SSE routes and POST /v1/stream-tokens" },
  { name: "webhooks", label: "Webhooks", hint: "/v1/webhooks" },
  { name: "account", label: "Account", hint: "/v1/account, /v1/usage, the ledger" },
];

/** Fills an action filter: "All", then every action. @param {HTMLSelectElement} select */
export function actionOptions(select) {
  fill(
    select,
    h("option", { value: "" }, "All"),
    ACTIONS.map((action) => h("option", { value: action }, action)),
  );
}
