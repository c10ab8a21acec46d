// @ts-check
/**
 * Finance: balances and spend per tenant, net spend per day and action as an SVG chart
 * (GET /admin/usage), the ledger with filters and pagination, its CSV export (fetched with
 * the Authorization header and saved as a blob: the token never goes in a URL) and the
 * reconciliation report with breaches highlighted. Days are UTC, like the API's.
 */
import { $, busy, fill, h, toast } from "./dom.js";
import { shortId, when } from "./format.js";
import { admin } from "./http.js";
import { usd } from "./money.js";
import { actionOptions, allTenants, tenantOptions } from "./pickers.js";
import { boot } from "./shell.js";

/** @typedef {import("./generated/api.js").Responses} Responses */

const range = /** @type {HTMLFormElement} */ ($("#range"));
actionOptions(/** @type {HTMLSelectElement} */ (range.elements.namedItem("action")));
const ledgerFilters = /** @type {HTMLFormElement} */ ($("#ledger-filters"));
const SVG = "http://www.w3.org/2000/svg";
const COLORS = [
  "#3f51d9",
  "#e07a1f",
  "#1d9a6c",
  "#c23b6b",
  "#7b5cd6",
  "#2f9bd1",
  "#b3a11d",
  "#d1493f",
  "#4c7a34",
  "#8c5a3c",
  "#5a6b85",
  "#d16fb5",
  "#23a5a5",
  "#9c7c12",
  "#6a3fa0",
  "#7d8a99",
];
/** @type {any[]} */
let tenants = [];
/** ledger pagination: the cursor of each page seen so far */
let pages = [""];
let pageIndex = 0;

boot(async () => {
  const today = new Date();
  const from = new Date(today.getTime() - 13 * 86_400_000);
  setField(range, "from", isoDay(from));
  setField(range, "to", isoDay(today));
  tenants = await allTenants();
  tenantOptions(/** @type {HTMLSelectElement} */ (range.elements.namedItem("tenant")), tenants, {
    any: "All tenants",
  });
  /** @type {HTMLSelectElement} */ (range.elements.namedItem("tenant")).value = "";
  range.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(range, loadAll);
  });
  ledgerFilters.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(ledgerFilters, () => loadLedger(true));
  });
  $("#ledger-next").addEventListener("click", () => busy(null, () => pageLedger(1)));
  $("#ledger-prev").addEventListener("click", () => busy(null, () => pageLedger(-1)));
  $("#ledger-first").addEventListener("click", () => busy(null, () => loadLedger(true)));
  const exportButton = /** @type {HTMLButtonElement} */ ($("#export"));
  exportButton.addEventListener("click", () => busy(exportButton, exportCsv));
  const recheck = /** @type {HTMLButtonElement} */ ($("#recheck"));
  recheck.addEventListener("click", () => busy(recheck, loadReconciliation));
  await loadAll();
});

/** @param {HTMLFormElement} form @param {string} name @param {string} value */
function setField(form, name, value) {
  /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value = value;
}

/** @param {Date} date */
const isoDay = (date) => date.toISOString().slice(0, 10);

/** The chosen range and filters, as the API's query parameters (to is exclusive: the day after). */
function filters() {
  const form = new FormData(range);
  const from = String(form.get("from"));
  const to = String(form.get("to"));
  if (!from || !to || from > to) throw new Error("Choose a range whose start is not after its end.");
  const end = new Date(`${to}T00:00:00Z`);
  end.setUTCDate(end.getUTCDate() + 1);
  /** @type {Record<string, string>} */
  const query = { from: `${from}T00:00:00Z`, to: end.toISOString().replace(".000Z", "Z") };
  const tenant = String(form.get("tenant") ?? "");
  const action = String(form.get("action") ?? "");
  if (tenant) query.tenant_id = tenant;
  if (action) query.action = action;
  return { query, from, to };
}

async function loadAll() {
  await Promise.all([
    loadBalances(),
    loadMargin(),
    loadHosting(),
    loadChart(),
    loadLedger(true),
    loadReconciliation(),
  ]);
}

// ---------------------------------------------------------------------------------------
// Balances and spend per tenant

async function loadBalances() {
  const { query } = filters();
  const [fresh, usage] = await Promise.all([
    allTenants(),
    /** @type {Promise<Responses["GET /admin/usage"]>} */ (
      admin(`/admin/usage?${new URLSearchParams({ ...query, group_by: "tenant" })}`)
    ),
  ]);
  tenants = fresh;
  /** @type {Map<string, any>} */
  const byTenant = new Map(usage.data.map((/** @type {any} */ r) => [r.tenant, r]));
  const shown = query.tenant_id ? tenants.filter((t) => t.id === query.tenant_id) : tenants;
  const zero = { charged_micros: 0, refunded_micros: 0, net_micros: 0, charged_tasks: 0 };
  const total = { balance: 0, charged: 0, refunded: 0, net: 0, tasks: 0 };
  const rows = shown
    .map((t) => ({ tenant: t, use: byTenant.get(t.id) ?? zero }))
    .sort((a, b) => b.use.net_micros - a.use.net_micros || b.tenant.balance_micros - a.tenant.balance_micros);
  for (const { tenant, use } of rows) {
    total.balance += tenant.balance_micros;
    total.charged += use.charged_micros;
    total.refunded += use.refunded_micros;
    total.net += use.net_micros;
    total.tasks += use.charged_tasks;
  }
  fill(
    $("#stats"),
    stat(query.tenant_id ? "Balance" : "Balances (all tenants)", usd(total.balance)),
    stat("Charged", usd(total.charged)),
    stat("Refunded", usd(total.refunded)),
    stat("Net spend", usd(total.net), "net-total"),
    stat("Charged tasks", String(total.tasks)),
  );
  fill(
    $("#balances tbody"),
    rows.length
      ? rows.map(({ tenant, use }) =>
          h(
            "tr",
            { dataset: { tenantId: tenant.id } },
            h("td", null, tenant.name, " ", h("code", { class: "muted" }, shortId(tenant.id))),
            h("td", null, h("span", { class: `badge ${tenant.status}` }, tenant.status)),
            h("td", { class: "num" }, usd(tenant.balance_micros)),
            h("td", { class: "num" }, usd(use.charged_micros)),
            h("td", { class: "num" }, usd(use.refunded_micros)),
            h("td", { class: "num", "data-role": "net" }, usd(use.net_micros)),
            h("td", { class: "num hide-sm" }, String(use.charged_tasks)),
          ),
        )
      : h("tr", null, h("td", { colSpan: 7, class: "empty" }, "No tenants.")),
  );
}

// ---------------------------------------------------------------------------------------
// Margin per tenant and action, and per upstream (GET /admin/margin)

async function loadMargin() {
  const { query } = filters();
  const { action: _unused, ...range } = query;
  /** @type {[Responses["GET /admin/margin"], Responses["GET /admin/margin"], Responses["GET /admin/upstreams"]]} */
  const [margin, byUpstream, pool] = await Promise.all([
    admin(`/admin/margin?${new URLSearchParams({ ...range, group_by: "tenant,action" })}`),
    admin(`/admin/margin?${new URLSearchParams({ ...range, group_by: "upstream" })}`),
    admin("/admin/upstreams"),
  ]);
  /** @type {Map<string, string>} */
  const names = new Map(tenants.map((t) => [t.id, t.name]));
  /** @type {Map<string, string>} */
  const upstreamNames = new Map(pool.data.map((u) => [u.id, u.name]));
  /** @param {any} r @param {(Node | string)[]} keys */
  const marginRow = (r, keys) =>
    h(
      "tr",
      { class: r.margin_micros < 0 ? "breach" : "" },
      keys.map((key) => h("td", null, key)),
      h("td", { class: "num" }, usd(r.revenue_micros)),
      h("td", { class: "num" }, usd(r.upstream_cost_micros)),
      h("td", { class: "num", "data-role": "margin" }, usd(r.margin_micros)),
      h("td", { class: "num hide-sm" }, String(r.tasks)),
    );
  fill(
    $("#margin tbody"),
    margin.data.length
      ? margin.data.map((/** @type {any} */ r) =>
          marginRow(r, [names.get(r.tenant) ?? shortId(r.tenant), r.action]),
        )
      : h("tr", null, h("td", { colSpan: 6, class: "empty" }, "No settled tasks in this range.")),
  );
  fill(
    $("#margin-by-upstream tbody"),
    byUpstream.data.length
      ? byUpstream.data.map((/** @type {any} */ r) =>
          marginRow(r, [
            r.upstream === null ? "not recorded" : (upstreamNames.get(r.upstream) ?? shortId(r.upstream)),
          ]),
        )
      : h("tr", null, h("td", { colSpan: 5, class: "empty" }, "No settled tasks in this range.")),
  );
}

// ---------------------------------------------------------------------------------------
// Hosted results per tenant (GET /admin/assets/usage): stored now, served and charged in range

/** @param {number} bytes */
const megabytes = (bytes) => `${(bytes / 1_000_000).toFixed(1)} MB`;

async function loadHosting() {
  const { query, from, to } = filters();
  /** @type {Record<string, string>} */
  const params = { from, to };
  if (query.tenant_id) params.tenant_id = query.tenant_id;
  /** @type {Responses["GET /admin/assets/usage"]} */
  const usage = await admin(`/admin/assets/usage?${new URLSearchParams(params)}`);
  /** @type {Map<string, string>} */
  const names = new Map(tenants.map((t) => [t.id, t.name]));
  fill(
    $("#hosting tbody"),
    usage.data.length
      ? usage.data.map((r) =>
          h(
            "tr",
            { dataset: { tenantId: r.tenant_id } },
            h("td", null, names.get(r.tenant_id) ?? shortId(r.tenant_id)),
            h("td", { class: "num" }, String(r.files)),
            h("td", { class: "num", "data-role": "stored" }, megabytes(r.bytes)),
            h("td", { class: "num", "data-role": "served" }, megabytes(r.served_bytes)),
            h("td", { class: "num" }, usd(r.storage_charged_micros)),
            h("td", { class: "num" }, usd(r.storage_owed_micros)),
          ),
        )
      : h("tr", null, h("td", { colSpan: 6, class: "empty" }, "No hosted files.")),
  );
}

/** @param {string} label @param {string} value @param {string} [id] */
const stat = (label, value, id) =>
  h("div", { class: "stat" }, h("span", { class: "muted" }, label), h("b", { id }, value));

// ---------------------------------------------------------------------------------------
// Chart: net spend per day, stacked by action

/**
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag @param {Record<string, string | number>} attrs @param {...(SVGElement | string)} children
 */
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

/** Round numbers for the axis: 1, 2 or 5 × 10^n micro-USD. @param {number} max */
function niceStep(max) {
  const rough = Math.max(max, 1) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? rough;
}

async function loadChart() {
  const { query, from, to } = filters();
  /** @type {Responses["GET /admin/usage"]} */
  const usage = await admin(`/admin/usage?${new URLSearchParams({ ...query, group_by: "day,action" })}`);
  const days = [];
  for (let d = new Date(`${from}T00:00:00Z`); isoDay(d) <= to; d.setUTCDate(d.getUTCDate() + 1))
    days.push(isoDay(d));
  /** @type {Map<string, Map<string, number>>} */
  const cells = new Map(days.map((d) => [d, new Map()]));
  /** @type {Map<string, number>} */
  const perAction = new Map();
  for (const row of usage.data) {
    const action = row.action ?? "other";
    cells.get(row.day ?? "")?.set(action, row.net_micros);
    perAction.set(action, (perAction.get(action) ?? 0) + row.net_micros);
  }
  const actions = [...perAction.keys()].sort((a, b) => (perAction.get(b) ?? 0) - (perAction.get(a) ?? 0));
  const color = (/** @type {string} */ action) => COLORS[actions.indexOf(action) % COLORS.length] ?? "#888";

  const W = 820;
  const H = 280;
  const M = { top: 12, right: 12, bottom: 34, left: 64 };
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const dayTotals = days.map((d) =>
    [...(cells.get(d)?.values() ?? [])].reduce((s, v) => s + Math.max(0, v), 0),
  );
  const step = niceStep(Math.max(...dayTotals, 0));
  const top = Math.max(step * Math.ceil(Math.max(...dayTotals, 1) / step), step);
  const y = (/** @type {number} */ v) => M.top + plotH - (v / top) * plotH;
  const slot = plotW / days.length;
  const barW = Math.max(2, Math.min(48, slot * 0.7));

  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `Net spend per day from ${from} to ${to}, by action`,
    id: "spend-chart",
  });
  for (let v = 0; v <= top + 1; v += step) {
    chart.append(
      svg("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), stroke: "#e3e6eb" }),
      svg(
        "text",
        { x: M.left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#667085" },
        usd(v),
      ),
    );
  }
  const labelEvery = Math.ceil(days.length / 10);
  days.forEach((day, i) => {
    const x = M.left + slot * i + (slot - barW) / 2;
    let base = 0;
    for (const action of actions) {
      const net = cells.get(day)?.get(action) ?? 0;
      if (net <= 0) continue;
      const rect = svg(
        "rect",
        {
          x,
          y: y(base + net),
          width: barW,
          height: Math.max(1, y(base) - y(base + net)),
          fill: color(action),
          "data-day": day,
          "data-action": action,
          "data-net-micros": net,
        },
        svg("title", {}, `${day} · ${action}: ${usd(net)}`),
      );
      chart.append(rect);
      base += net;
    }
    if (i % labelEvery === 0) {
      chart.append(
        svg(
          "text",
          {
            x: x + barW / 2,
            y: H - M.bottom + 16,
            "text-anchor": "middle",
            "font-size": 11,
            fill: "#667085",
          },
          day.slice(5),
        ),
      );
    }
  });
  chart.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(0), y2: y(0), stroke: "#98a2b3" }));
  const empty = actions.length === 0;
  fill($("#chart"), chart, empty ? h("p", { class: "empty" }, "No charges in this range.") : null);
  fill(
    $("#legend"),
    actions.map((action) =>
      h(
        "span",
        { dataset: { action } },
        h("i", { class: "swatch", dataset: { color: color(action) } }),
        `${action} ${usd(perAction.get(action) ?? 0)}`,
      ),
    ),
  );
  // Swatch colours through CSSOM (the CSP allows no inline style attributes).
  for (const swatch of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("#legend i"))) {
    swatch.style.background = swatch.dataset.color ?? "";
  }
}

// ---------------------------------------------------------------------------------------
// Ledger, its pagination and the CSV export of the same filters

function ledgerQuery() {
  const { query, from, to } = filters();
  const form = new FormData(ledgerFilters);
  const kind = String(form.get("kind") ?? "");
  const task = String(form.get("task_id") ?? "").trim();
  /** @type {Record<string, string>} */
  const all = { ...query };
  if (kind) all.kind = kind;
  if (task) all.task_id = task;
  return { query: all, from, to };
}

/** @param {boolean} fromStart */
async function loadLedger(fromStart) {
  if (fromStart) {
    pages = [""];
    pageIndex = 0;
  }
  const { query } = ledgerQuery();
  const params = new URLSearchParams({ ...query, limit: "50" });
  if (pages[pageIndex]) params.set("cursor", pages[pageIndex] ?? "");
  /** @type {Responses["GET /admin/ledger"]} */
  const page = await admin(`/admin/ledger?${params}`);
  if (page.next_cursor && pages.length === pageIndex + 1) pages.push(page.next_cursor);
  /** @type {HTMLButtonElement} */ ($("#ledger-next")).disabled = !page.next_cursor;
  /** @type {HTMLButtonElement} */ ($("#ledger-prev")).disabled = pageIndex === 0;
  /** @type {HTMLButtonElement} */ ($("#ledger-first")).disabled = pageIndex === 0;
  $("#ledger-page").textContent = `page ${pageIndex + 1}${page.data.length ? "" : " (no rows)"}`;
  const names = new Map(tenants.map((t) => [t.id, t.name]));
  fill(
    $("#ledger tbody"),
    page.data.length
      ? page.data.map((/** @type {any} */ row) =>
          h(
            "tr",
            { dataset: { ledgerId: String(row.id), kind: row.kind, taskId: row.task_id ?? "" } },
            h("td", { class: "num" }, String(row.id)),
            h("td", null, when(row.created_at)),
            h("td", null, names.get(row.tenant_id) ?? shortId(row.tenant_id)),
            h("td", null, h("span", { class: `badge ${row.kind === "refund" ? "ok" : ""}` }, row.kind)),
            h("td", null, row.action ?? ""),
            h("td", null, row.task_id ? h("code", { title: row.task_id }, shortId(row.task_id)) : ""),
            h(
              "td",
              { class: `num ${row.amount_micros < 0 ? "amount-neg" : "amount-pos"}` },
              usd(row.amount_micros),
            ),
            h("td", { class: "num" }, usd(row.balance_after_micros)),
            h("td", { class: "hide-sm" }, row.reason ?? ""),
          ),
        )
      : h("tr", null, h("td", { colSpan: 9, class: "empty" }, "No ledger rows for these filters.")),
  );
}

/** @param {number} delta */
async function pageLedger(delta) {
  pageIndex = Math.max(0, Math.min(pages.length - 1, pageIndex + delta));
  await loadLedger(false);
}

async function exportCsv() {
  const { query, from, to } = ledgerQuery();
  const response = /** @type {Response} */ (
    await admin(`/admin/ledger.csv?${new URLSearchParams(query)}`, { raw: true })
  );
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: `ledger_${from}_${to}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  toast(`Exported the ledger from ${from} to ${to} (UTC).`, "ok");
}

// ---------------------------------------------------------------------------------------
// Reconciliation

async function loadReconciliation() {
  /** @type {Responses["GET /admin/reconciliation"]} */
  const report = await admin("/admin/reconciliation");
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const breach of report.breaches) counts.set(breach.check, (counts.get(breach.check) ?? 0) + 1);
  fill(
    $("#recon"),
    h(
      "p",
      null,
      h(
        "span",
        { class: `badge ${report.ok ? "ok" : "bad"}`, id: "recon-status" },
        report.ok ? "OK" : `${report.breaches.length} breaches`,
      ),
      ` checked ${when(report.checked_at)}`,
    ),
    h(
      "ul",
      { class: "checks" },
      report.checks.map((/** @type {string} */ check) =>
        h(
          "li",
          { dataset: { check } },
          counts.get(check) ? "✗ " : "✓ ",
          check.replace(/_/g, " "),
          counts.get(check) ? h("strong", { class: "error" }, ` — ${counts.get(check)} breach(es)`) : "",
        ),
      ),
    ),
    report.breaches.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { id: "breaches" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["Check", "Tenant", "Task", "Ledger row", "Detail"].map((l) => h("th", null, l)),
              ),
            ),
            h(
              "tbody",
              null,
              report.breaches.map((/** @type {any} */ b) =>
                h(
                  "tr",
                  { class: "breach" },
                  h("td", null, b.check),
                  h("td", null, b.tenant_id ?? ""),
                  h("td", null, b.task_id ?? ""),
                  h("td", null, b.ledger_id === undefined ? "" : String(b.ledger_id)),
                  h("td", null, h("code", null, b.detail)),
                ),
              ),
            ),
          ),
        )
      : null,
  );
}
