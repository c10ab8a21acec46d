// @ts-check
/**
 * Live tasks: a tenant's tasks from GET /admin/tasks (D1, newest first, with each open task's
 * live status and progress in the same answer), then kept current by the tenant's SSE stream
 * (GET /v1/events with a stream token the console mints through POST
 * /admin/tenants/{id}/stream-tokens). Only finished tasks with results (images, videos,
 * buttons), and open ones the list has no live state for, are filled in with their task object.
 */
import { $, fill, h } from "./dom.js";
import { admin } from "./http.js";
import { costMicros } from "./money.js";
import { actionOptions, allTenants, tenantOptions } from "./pickers.js";
import { session } from "./session.js";
import { boot } from "./shell.js";
import { liveStream, TERMINAL } from "./sse.js";
import { taskCard, updateTaskCard } from "./taskcard.js";

/** @typedef {import("./generated/api.js").AdminTask} AdminTask */
/** @typedef {import("./generated/api.js").Responses} Responses */

const PAGE = 24;
const filters = /** @type {HTMLFormElement} */ ($("#filters"));
actionOptions(/** @type {HTMLSelectElement} */ (filters.elements.namedItem("action")));
const list = $("#tasks");
/** @type {Map<string, HTMLElement>} */
const cards = new Map();
/** @type {string | null} */
let cursor = null;
/** @type {{ stop: () => void } | null} */
let stream = null;
let generation = 0;

boot(async () => {
  const tenants = await allTenants();
  const select = /** @type {HTMLSelectElement} */ (filters.elements.namedItem("tenant"));
  tenantOptions(select, tenants);
  if (!tenants.length) {
    fill(list, h("p", { class: "empty" }, "No tenants yet: create one on the Tenants & keys page."));
    return;
  }
  filters.addEventListener("change", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (target.getAttribute("name") === "view") applyView();
    else start();
  });
  filters.addEventListener("submit", (event) => event.preventDefault());
  $("#more").addEventListener("click", () => loadPage(generation));
  applyView();
  start();
});

function current() {
  const form = new FormData(filters);
  return {
    tenant: String(form.get("tenant") ?? ""),
    status: String(form.get("status") ?? ""),
    action: String(form.get("action") ?? ""),
  };
}

function applyView() {
  const view = String(new FormData(filters).get("view") ?? "both");
  list.classList.toggle("view-grid", view === "grid");
  list.classList.toggle("view-tiles", view === "tiles");
}

/** (Re)starts the page for the chosen tenant and filters: the stream first, then the list. */
function start() {
  const gen = ++generation;
  stream?.stop();
  cards.clear();
  cursor = null;
  fill(list);
  const { tenant } = current();
  session.set("tenant", tenant);
  const state = $("#stream-state");
  stream = liveStream({
    path: "/v1/events",
    mintToken: async () =>
      (
        await admin(`/admin/tenants/${encodeURIComponent(tenant)}/stream-tokens`, {
          method: "POST",
          body: { ttl_seconds: 3600 },
        })
      ).token,
    onEvent: (task) => {
      if (gen === generation) onTaskEvent(task);
    },
    onState: (s) => {
      state.className = `stream-state ${s}`;
      state.textContent = {
        connecting: "connecting…",
        live: "live",
        reconnecting: "reconnecting…",
        stopped: "offline",
      }[s];
    },
  });
  loadPage(gen);
}

/** @param {number} gen */
async function loadPage(gen) {
  const { tenant, status, action } = current();
  const query = new URLSearchParams({ tenant_id: tenant, limit: String(PAGE) });
  if (status) query.set("status", status);
  if (action) query.set("action", action);
  if (cursor) query.set("cursor", cursor);
  const more = /** @type {HTMLButtonElement} */ ($("#more"));
  more.disabled = true;
  try {
    /** @type {Responses["GET /admin/tasks"]} */
    const page = await admin(`/admin/tasks?${query}`);
    if (gen !== generation) return;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    for (const row of page.data) {
      if (cards.has(row.id)) continue;
      const card = taskCard(placeholder(row), { costMicros: row.cost_micros });
      cards.set(row.id, card);
      list.append(card);
    }
    if (!cards.size)
      fill(list, h("p", { class: "empty", id: "no-tasks" }, "No tasks match: new ones appear here live."));
    await hydrate(
      page.data.filter(needsTaskObject).map((row) => row.id),
      gen,
    );
  } finally {
    more.disabled = false;
  }
}

/**
 * Whether a card needs its task object: finished tasks for their results, and open tasks whose
 * live state the list could not give (just finished, not yet settled, or not yet heard of).
 * @param {AdminTask} row
 */
const needsTaskObject = (row) => row.status === "SUCCESS" || (row.status === "open" && !row.live);

/**
 * What the list tells: the billing row, and for an open task its live status and progress.
 * @param {AdminTask} row
 */
function placeholder(row) {
  const live = row.status === "open" ? row.live : null;
  return {
    id: row.id,
    action: row.action.toUpperCase().replace(/-/g, "_"),
    status: row.status === "open" ? (live?.status ?? "…") : row.status,
    progress: row.status === "SUCCESS" ? "100%" : `${live?.progress ?? 0}%`,
    fail_reason: row.fail_reason,
    created: Math.floor(Date.parse(row.created_at) / 1000),
  };
}

/** Fetches the task objects the list cannot stand in for, four at a time. @param {string[]} ids @param {number} gen */
async function hydrate(ids, gen) {
  const queue = [...ids];
  const worker = async () => {
    for (let id = queue.shift(); id; id = queue.shift()) {
      if (gen !== generation) return;
      try {
        /** @type {Responses["GET /admin/tasks/{task_id}"]} */
        const detail = await admin(`/admin/tasks/${id}`);
        const card = cards.get(id);
        if (card && detail.task && card.dataset.live !== "1") updateTaskCard(card, detail.task);
      } catch {
        // The card keeps what the list said; the stream may still fill it in.
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

/** A change from the tenant's stream. @param {any} task */
function onTaskEvent(task) {
  if (!task || typeof task.id !== "string") return;
  let card = cards.get(task.id);
  if (!card) {
    if (!matches(task)) return;
    card = taskCard(task, {});
    cards.set(task.id, card);
    document.getElementById("no-tasks")?.remove();
    list.prepend(card);
  }
  card.dataset.live = "1";
  /** @type {any} */ (card)._options.costMicros = costMicros(task.cost ?? 0);
  updateTaskCard(card, task);
}

/** Whether a task that appeared on the stream belongs on the page under the current filters. @param {any} task */
function matches(task) {
  const { status, action } = current();
  if (action && task.action !== action.toUpperCase().replace(/-/g, "_")) return false;
  if (status === "open") return !TERMINAL.has(task.status);
  if (status) return task.status === status;
  return true;
}
