// @ts-check
/** Upstreams: the pool with each member's live health, add a member, change or disable one. */
import { $, busy, fill, h, toast } from "./dom.js";
import { shortId, when } from "./format.js";
import { ACTIONS } from "./generated/api.js";
import { admin } from "./http.js";
import { usd } from "./money.js";
import { session } from "./session.js";
import { boot } from "./shell.js";

/** @typedef {import("./generated/api.js").Responses} Responses */

/** Health is refreshed this often while the tab is visible (the gates answer from memory). */
const REFRESH_MS = 5_000;

/** @type {any[]} */
let upstreams = [];
/** @type {string | null} */
let selectedId = session.get("upstream");

boot(async () => {
  const create = /** @type {HTMLFormElement} */ ($("#create-upstream"));
  create.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(create, async () => {
      const form = new FormData(create);
      /** @type {Record<string, unknown>} */
      const body = {
        name: String(form.get("name")).trim(),
        base_url: String(form.get("base_url")).trim(),
        api_key: String(form.get("api_key")).trim(),
      };
      for (const field of ["weight", "priority", "max_inflight"]) {
        const value = String(form.get(field) ?? "");
        if (value) body[field] = Number(value);
      }
      const upstream = await admin("/admin/upstreams", { method: "POST", body });
      create.reset();
      toast(`Upstream ${upstream.name} added.`, "ok");
      select(upstream.id);
      await load();
    });
  });
  await load();
  setInterval(() => {
    if (document.visibilityState === "visible") load().catch(liveFailed);
  }, REFRESH_MS);
});

/** @param {unknown} error */
function liveFailed(error) {
  $("#live-state").textContent = `not updating: ${error instanceof Error ? error.message : error}`;
}

/** Reloads the pool; the selected member's health is redrawn, its form only when it is new. */
async function load() {
  /** @type {Responses["GET /admin/upstreams"]} */
  const page = await admin("/admin/upstreams");
  upstreams = page.data;
  $("#live-state").textContent = `live · ${new Date().toLocaleTimeString()}`;
  renderList();
  const selected = upstreams.find((u) => u.id === selectedId);
  if (!selected) return;
  if ($("#upstream").dataset.upstreamId === selected.id) fill($("#upstream-health"), health(selected));
  else renderUpstream(selected);
}

/** @param {string} id */
function select(id) {
  selectedId = id;
  session.set("upstream", id);
}

/** @param {any} u */
const circuitBadge = (u) => {
  const kind = !u.enabled
    ? "disabled"
    : u.live.circuit === "closed"
      ? "ok"
      : u.live.circuit === "open"
        ? "bad"
        : "open";
  const label = !u.enabled ? "disabled" : u.live.circuit.replace("_", "-");
  return h("span", { class: `badge ${kind}`, dataset: { role: "circuit" } }, label);
};

function renderList() {
  fill(
    $("#upstreams-table tbody"),
    upstreams.map((u) =>
      h(
        "tr",
        {
          class: `clickable${u.id === selectedId ? " selected" : ""}`,
          dataset: { upstreamId: u.id },
          tabIndex: 0,
          onclick: () => open(u.id),
          onkeydown: (/** @type {KeyboardEvent} */ e) => e.key === "Enter" && open(u.id),
        },
        h("td", null, h("strong", null, u.name), h("br"), h("code", { class: "muted" }, shortId(u.id))),
        h("td", null, circuitBadge(u)),
        h(
          "td",
          { class: "num" },
          `${u.live.inflight} / ${u.max_inflight}`,
          u.live.queued ? h("br") : null,
          u.live.queued ? h("span", { class: "muted" }, `+${u.live.queued} queued`) : null,
        ),
        h(
          "td",
          { class: "num hide-sm" },
          `${u.live.submits_in_window}`,
          u.live.submit_failures_in_window ? ` (${u.live.submit_failures_in_window} failed)` : "",
          h("br"),
          h(
            "span",
            { class: "muted" },
            u.live.p50_submit_ms === null ? "p50 —" : `p50 ${u.live.p50_submit_ms} ms`,
          ),
        ),
        h("td", { class: "num" }, usd(u.upstream_cost_today_micros)),
      ),
    ),
  );
}

/** @param {string} id */
function open(id) {
  select(id);
  for (const row of document.querySelectorAll("#upstreams-table tbody tr")) {
    row.classList.toggle("selected", /** @type {HTMLElement} */ (row).dataset.upstreamId === id);
  }
  const upstream = upstreams.find((u) => u.id === id);
  if (upstream) renderUpstream(upstream);
}

/** @param {string} label @param {string} value */
const stat = (label, value) =>
  h("div", { class: "stat" }, h("span", { class: "muted" }, label), h("b", null, value));

/** @param {any} u */
function health(u) {
  return [
    h(
      "div",
      { class: "stats" },
      stat("Circuit", u.live.circuit.replace("_", "-")),
      stat("Taking new tasks", u.enabled && u.live.admitting ? "yes" : "no"),
      stat("In flight", `${u.live.inflight} / ${u.max_inflight}`),
      stat("Queued", String(u.live.queued)),
      stat("Requests (errors) / 60 s", `${u.live.window_samples} (${u.live.window_errors})`),
      stat("Submits (failed) / 60 s", `${u.live.submits_in_window} (${u.live.submit_failures_in_window})`),
      stat("p50 submit", u.live.p50_submit_ms === null ? "—" : `${u.live.p50_submit_ms} ms`),
      stat("Upstream cost today", usd(u.upstream_cost_today_micros)),
    ),
    u.live.last_error ? h("p", { class: "error" }, "Last error: ", u.live.last_error) : null,
  ];
}

/** @param {any} u */
function renderUpstream(u) {
  const panel = $("#upstream");
  panel.dataset.upstreamId = u.id;
  const fromEnvironment = u.source === "environment";
  const form = h(
    "form",
    { class: "form-grid", id: "upstream-settings", autocomplete: "off" },
    h(
      "label",
      { class: "wide" },
      "Name ",
      h("input", { name: "name", required: true, maxLength: 200, value: u.name }),
    ),
    fromEnvironment
      ? null
      : h(
          "label",
          { class: "wide" },
          "Base URL ",
          h("input", { name: "base_url", required: true, value: u.base_url }),
        ),
    fromEnvironment
      ? null
      : h(
          "label",
          { class: "wide" },
          `New API key (now …${u.key_hint}; empty keeps it) `,
          h("input", { name: "api_key", type: "password", minLength: 8, autocomplete: "off" }),
        ),
    h(
      "label",
      null,
      "Weight ",
      h("input", { name: "weight", type: "number", min: 1, max: 1000, value: String(u.weight) }),
    ),
    h(
      "label",
      null,
      "Priority ",
      h("input", { name: "priority", type: "number", min: -1000, max: 1000, value: String(u.priority) }),
    ),
    h(
      "label",
      null,
      "Max in flight ",
      h("input", { name: "max_inflight", type: "number", min: 1, value: String(u.max_inflight) }),
    ),
    h(
      "label",
      { class: "wide" },
      "Actions (comma-separated; empty serves every action) ",
      h("input", { name: "actions", value: (u.actions ?? []).join(", "), placeholder: "imagine, upscale" }),
    ),
    h("label", null, h("input", { name: "enabled", type: "checkbox", checked: u.enabled }), " Enabled"),
    h("button", { type: "submit" }, "Save"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, async () => {
      const data = new FormData(form);
      const actions = String(data.get("actions") ?? "")
        .split(",")
        .map((a) => a.trim())
        .filter(Boolean);
      const unknown = actions.filter((a) => !(/** @type {readonly string[]} */ (ACTIONS).includes(a)));
      if (unknown.length)
        throw new Error(`Unknown action: ${unknown.join(", ")}. Known: ${ACTIONS.join(", ")}.`);
      /** @type {Record<string, unknown>} */
      const body = {
        name: String(data.get("name")).trim(),
        weight: Number(data.get("weight")),
        priority: Number(data.get("priority")),
        max_inflight: Number(data.get("max_inflight")),
        actions: actions.length ? actions : null,
        enabled: data.get("enabled") === "on",
      };
      if (!fromEnvironment) {
        body.base_url = String(data.get("base_url")).trim();
        const key = String(data.get("api_key") ?? "").trim();
        if (key) body.api_key = key;
      }
      const saved = await admin(`/admin/upstreams/${encodeURIComponent(u.id)}`, { method: "PATCH", body });
      toast(`${saved.name} saved.`, "ok");
      panel.dataset.upstreamId = "";
      await load();
    });
  });
  const disable = h(
    "button",
    {
      type: "button",
      class: "danger small",
      hidden: fromEnvironment || !u.enabled,
      onclick: () =>
        busy(disable, async () => {
          await admin(`/admin/upstreams/${encodeURIComponent(u.id)}`, { method: "DELETE" });
          toast(`${u.name} disabled: its tasks in flight keep polling it.`, "ok");
          panel.dataset.upstreamId = "";
          await load();
        }),
    },
    "Disable",
  );
  fill(
    panel,
    h("div", { class: "spread" }, h("h2", null, u.name, " ", circuitBadge(u)), disable),
    h(
      "p",
      { class: "muted" },
      h("code", null, u.id),
      " · ",
      fromEnvironment ? "URL and key from UPSTREAM_BASE_URL / UPSTREAM_API_KEY" : u.base_url,
      ` · key …${u.key_hint} · since ${when(u.created_at)}`,
    ),
    h("div", { id: "upstream-health" }, health(u)),
    h("h3", null, "Settings"),
    form,
  );
}
