// @ts-check
/** Choosers shared by pages: tenants, actions and key scopes. */
import { fill, h } from "./dom.js";
import { shortId } from "./format.js";
import { admin } from "./http.js";
import { session } from "./session.js";

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
