// @ts-check
/**
 * Choosers shared by pages: tenants, actions and key scopes. The action and scope lists come
 * from generated/api.js, which scripts/build-assets.mjs writes from the API's /openapi.json.
 */

/** @typedef {import("./generated/api.js").ScopeName} ScopeName */
/** @typedef {import("./generated/api.js").Tenant} Tenant */
/** @typedef {import("./generated/api.js").Responses} Responses */
import { fill, h } from "./dom.js";
import { shortId } from "./format.js";
import { ACTIONS, SCOPE_NAMES } from "./generated/api.js";
import { admin } from "./http.js";
import { session } from "./session.js";

/**
 * Every tenant (pages through GET /admin/tenants).
 * @returns {Promise<Tenant[]>}
 */
export async function allTenants() {
  const tenants = [];
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const query = new URLSearchParams({ limit: "500" });
    if (cursor) query.set("cursor", cursor);
    /** @type {Responses["GET /admin/tenants"]} */
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
 * @param {Tenant[]} tenants
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
 * How the console names each key scope. Keyed by the API's scope names (generated from
 * /openapi.json), so a scope added to or removed from the API fails the console's type check
 * until it is named here.
 * @type {Record<ScopeName, { label: string, hint: string }>}
 */
const SCOPE_LABELS = {
  generate: { label: "Generate", hint: "submit generations (allowed actions narrow it)" },
  read: { label: "Read tasks", hint: "GET /v1/midjourney/{id}, /v1/tasks/{id}" },
  stream: { label: "Stream", hint: "SSE routes and POST /v1/stream-tokens" },
  webhooks: { label: "Webhooks", hint: "/v1/webhooks" },
  account: { label: "Account", hint: "/v1/account, /v1/usage, the ledger" },
};

/** Key scopes in the API's order, with their labels. A key issued without scopes has them all. */
export const SCOPES = SCOPE_NAMES.map((name) => ({ name, ...SCOPE_LABELS[name] }));

/** Fills an action filter: "All", then every action. @param {HTMLSelectElement} select */
export function actionOptions(select) {
  fill(
    select,
    h("option", { value: "" }, "All"),
    ACTIONS.map((action) => h("option", { value: action }, action)),
  );
}
