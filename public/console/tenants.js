// @ts-check
/** Tenants & keys: list, create, top up, suspend; issue keys (secret shown once), disable, revoke, limits. */
import { $, busy, fill, h, toast } from "./dom.js";
import { shortId, when } from "./format.js";
import { admin } from "./http.js";
import { parseUsd, usd } from "./money.js";
import { SCOPES } from "./pickers.js";
import { session } from "./session.js";
import { boot } from "./shell.js";

/** @typedef {import("./generated/api.js").Responses} Responses */

/** @type {any[]} */
let tenants = [];
/** @type {string | null} */
let nextCursor = null;
/** @type {string | null} */
let selectedId = session.get("tenant");

boot(async () => {
  $("#refresh-tenants").addEventListener("click", () => loadTenants(true));
  $("#more-tenants").addEventListener("click", () => loadTenants(false));
  const create = /** @type {HTMLFormElement} */ ($("#create-tenant"));
  create.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(create, async () => {
      const form = new FormData(create);
      /** @type {Record<string, unknown>} */
      const body = { name: String(form.get("name")).trim() };
      const maxInflight = String(form.get("max_inflight") ?? "");
      if (maxInflight) body.max_inflight = Number(maxInflight);
      const multiplier = String(form.get("multiplier") ?? "");
      if (multiplier) body.price_multiplier_bps = Math.round(Number(multiplier) * 10_000);
      const tenant = await admin("/admin/tenants", { method: "POST", body });
      create.reset();
      toast(`Tenant ${tenant.name} created.`, "ok");
      selectedId = tenant.id;
      session.set("tenant", tenant.id);
      await loadTenants(true);
    });
  });
  await loadTenants(true);
});

/** @param {boolean} fromStart */
async function loadTenants(fromStart) {
  const query = new URLSearchParams({ limit: "100" });
  if (!fromStart && nextCursor) query.set("cursor", nextCursor);
  /** @type {Responses["GET /admin/tenants"]} */
  const page = await admin(`/admin/tenants?${query}`);
  tenants = fromStart ? page.data : [...tenants, ...page.data];
  nextCursor = page.next_cursor;
  $("#more-tenants").hidden = !nextCursor;
  renderTenantList();
  const selected = tenants.find((t) => t.id === selectedId);
  if (selected) await showTenant(selected.id);
}

function renderTenantList() {
  const body = $("#tenants-table tbody");
  if (!tenants.length) {
    fill(
      body,
      h("tr", null, h("td", { colSpan: 4, class: "empty" }, "No tenants yet: create the first one below.")),
    );
    return;
  }
  fill(
    body,
    tenants.map((t) =>
      h(
        "tr",
        {
          class: `clickable${t.id === selectedId ? " selected" : ""}`,
          dataset: { tenantId: t.id },
          tabIndex: 0,
          onclick: () => showTenant(t.id),
          onkeydown: (/** @type {KeyboardEvent} */ e) => e.key === "Enter" && showTenant(t.id),
        },
        h("td", null, h("strong", null, t.name), h("br"), h("code", { class: "muted" }, shortId(t.id))),
        h("td", { class: "num" }, usd(t.balance_micros)),
        h("td", null, h("span", { class: `badge ${t.status}` }, t.status)),
        h("td", { class: "num hide-sm" }, `${t.inflight} / ${t.max_inflight}`),
      ),
    ),
  );
}

/** @param {string} id */
async function showTenant(id) {
  selectedId = id;
  session.set("tenant", id);
  for (const row of document.querySelectorAll("#tenants-table tbody tr")) {
    row.classList.toggle("selected", /** @type {HTMLElement} */ (row).dataset.tenantId === id);
  }
  /** @type {[Responses["GET /admin/tenants/{tenant_id}"], Responses["GET /admin/tenants/{tenant_id}/keys"]]} */
  const [tenant, keys] = await Promise.all([
    admin(`/admin/tenants/${encodeURIComponent(id)}`),
    admin(`/admin/tenants/${encodeURIComponent(id)}/keys`),
  ]);
  const index = tenants.findIndex((t) => t.id === id);
  if (index >= 0) tenants[index] = tenant;
  renderTenantList();
  renderTenant(tenant, keys.data);
}

const refresh = () => (selectedId ? showTenant(selectedId) : Promise.resolve());

/** @param {any} tenant @param {any[]} keys */
function renderTenant(tenant, keys) {
  const panel = $("#tenant");
  const suspended = tenant.status === "suspended";
  const toggle = h(
    "button",
    {
      type: "button",
      class: suspended ? "secondary small" : "danger small",
      onclick: () =>
        busy(toggle, async () => {
          await admin(`/admin/tenants/${tenant.id}`, {
            method: "PATCH",
            body: { status: suspended ? "active" : "suspended" },
          });
          toast(`${tenant.name} ${suspended ? "activated" : "suspended"}.`, "ok");
          await refresh();
        }),
    },
    suspended ? "Activate" : "Suspend",
  );

  const topup = h(
    "form",
    { class: "row", id: "topup-form" },
    h(
      "label",
      null,
      "Amount (USD)",
      h("input", { name: "amount", required: true, inputMode: "decimal", placeholder: "10.00", size: 8 }),
    ),
    h(
      "label",
      { class: "grow" },
      "Reason",
      h("input", { name: "reason", required: true, value: "top-up", maxLength: 500 }),
    ),
    h("button", { type: "submit" }, "Top up"),
  );
  topup.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(topup, async () => {
      const form = new FormData(topup);
      const micros = parseUsd(String(form.get("amount")));
      if (!micros) throw new Error("Enter a positive amount in USD, e.g. 10 or 2.50.");
      await admin(`/admin/tenants/${tenant.id}/topups`, {
        method: "POST",
        body: { amount_micros: micros, reason: String(form.get("reason")).trim() || "top-up" },
      });
      toast(`Added ${usd(micros)} to ${tenant.name}.`, "ok");
      await refresh();
    });
  });

  const limits = h(
    "form",
    { class: "form-grid", id: "tenant-limits" },
    h(
      "label",
      null,
      "Max tasks in flight",
      h("input", { name: "max_inflight", type: "number", min: 1, value: String(tenant.max_inflight) }),
    ),
    h(
      "label",
      null,
      "Price multiplier (×)",
      h("input", {
        name: "multiplier",
        type: "number",
        min: 0.0001,
        step: 0.0001,
        value: String(tenant.price_multiplier_bps / 10_000),
      }),
    ),
    h(
      "label",
      { class: "wide" },
      "CORS origins for browser streams (one per line)",
      h(
        "textarea",
        { name: "cors", rows: 2, placeholder: "https://app.example.com" },
        tenant.cors_origins.join("\n"),
      ),
    ),
    h(
      "label",
      null,
      "Result files",
      h(
        "select",
        { name: "asset_mode" },
        h("option", { value: "upstream", selected: tenant.asset_mode === "upstream" }, "upstream's URLs"),
        h(
          "option",
          { value: "hosted", selected: tenant.asset_mode === "hosted" },
          "hosted here (signed links)",
        ),
      ),
    ),
    h(
      "label",
      null,
      "Hosted link lifetime (s)",
      h("input", {
        name: "asset_link_ttl_seconds",
        type: "number",
        min: 60,
        value: String(tenant.asset_link_ttl_seconds),
      }),
    ),
    h(
      "label",
      null,
      "Hosted retention (days)",
      h("input", {
        name: "asset_retention_days",
        type: "number",
        min: 1,
        value: String(tenant.asset_retention_days),
      }),
    ),
    h(
      "label",
      null,
      "Hosted links",
      h(
        "select",
        { name: "asset_links" },
        h("option", { value: "signed", selected: tenant.asset_links === "signed" }, "signed, expiring"),
        h(
          "option",
          { value: "capability", selected: tenant.asset_links === "capability" },
          "capability (unguessable, kept until retention)",
        ),
      ),
    ),
    h(
      "label",
      null,
      "Storage price (µUSD per GB-month, 0 = free)",
      h("input", {
        name: "storage_price",
        type: "number",
        min: 0,
        value: String(tenant.storage_price_micros_per_gb_month),
      }),
    ),
    h("button", { type: "submit", class: "secondary" }, "Save limits"),
  );
  limits.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(limits, async () => {
      const form = new FormData(limits);
      await admin(`/admin/tenants/${tenant.id}`, {
        method: "PATCH",
        body: {
          max_inflight: Number(form.get("max_inflight")),
          price_multiplier_bps: Math.round(Number(form.get("multiplier")) * 10_000),
          cors_origins: String(form.get("cors") ?? "")
            .split(/[\s,]+/)
            .filter(Boolean),
          // Sent only when changed: turning hosting on needs the gateway's hosting settings.
          ...(form.get("asset_mode") !== tenant.asset_mode
            ? { asset_mode: String(form.get("asset_mode")) }
            : {}),
          asset_link_ttl_seconds: Number(form.get("asset_link_ttl_seconds")),
          asset_retention_days: Number(form.get("asset_retention_days")),
          asset_links: /** @type {"signed" | "capability"} */ (String(form.get("asset_links"))),
          storage_price_micros_per_gb_month: Number(form.get("storage_price")),
        },
      });
      toast("Limits saved.", "ok");
      await refresh();
    });
  });

  fill(
    panel,
    h(
      "div",
      { class: "spread" },
      h("h2", null, tenant.name, " ", h("span", { class: `badge ${tenant.status}` }, tenant.status)),
      toggle,
    ),
    h("p", { class: "muted" }, h("code", null, tenant.id), ` · created ${when(tenant.created_at)}`),
    h(
      "div",
      { class: "stats" },
      stat("Balance", usd(tenant.balance_micros), "tenant-balance"),
      stat("Tasks in flight", `${tenant.inflight} / ${tenant.max_inflight}`),
      stat(
        "Price multiplier",
        `× ${(tenant.price_multiplier_bps / 10_000).toFixed(4).replace(/0{1,2}$/, "")}`,
      ),
    ),
    h("h3", null, "Top up"),
    topup,
    h("h3", null, "API keys"),
    keysTable(tenant, keys),
    h("div", { id: "secret-slot" }),
    h("h3", null, "New key"),
    newKeyForm(tenant),
    h("details", null, h("summary", null, "Tenant limits and CORS"), limits),
  );
}

/** @param {string} label @param {string} value @param {string} [id] */
const stat = (label, value, id) =>
  h("div", { class: "stat" }, h("span", { class: "muted" }, label), h("b", { id }, value));

/** @param {any} tenant @param {any[]} keys */
function keysTable(tenant, keys) {
  if (!keys.length) return h("p", { class: "muted" }, "No keys yet.");
  const body = h("tbody");
  for (const key of keys) {
    const row = h(
      "tr",
      { dataset: { keyId: key.id } },
      h(
        "td",
        null,
        key.name,
        h("br"),
        h("code", { class: "muted" }, `${key.prefix}…`),
        (key.scopes ?? []).length < SCOPES.length
          ? h("div", { class: "muted key-scopes" }, `scopes: ${key.scopes.join(", ")}`)
          : null,
      ),
      h("td", null, h("span", { class: `badge ${key.status}` }, key.status)),
      h("td", { class: "num" }, String(key.rpm_limit)),
      h("td", { class: "num" }, `${key.inflight} / ${key.max_inflight}`),
      h("td", { class: "num" }, key.daily_cap_micros === null ? "—" : usd(key.daily_cap_micros)),
      h("td", { class: "num" }, key.monthly_cap_micros === null ? "—" : usd(key.monthly_cap_micros)),
      h("td", null, key.expires_at ? when(key.expires_at) : "never"),
      h("td", null, keyActions(tenant, key)),
    );
    body.append(row);
  }
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "keys-table" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["Key", "Status", "RPM", "In flight", "Daily cap", "Monthly cap", "Expires", ""].map((label, i) =>
            h("th", { class: i >= 2 && i <= 5 ? "num" : undefined }, label),
          ),
        ),
      ),
      body,
    ),
  );
}

/** @param {any} tenant @param {any} key */
function keyActions(tenant, key) {
  if (key.status === "revoked") return h("span", { class: "muted" }, `revoked ${when(key.revoked_at)}`);
  const path = `/admin/tenants/${tenant.id}/keys/${key.id}`;
  const enable = key.status === "disabled";
  const toggle = h(
    "button",
    {
      type: "button",
      class: "secondary small",
      onclick: () =>
        busy(toggle, async () => {
          await admin(path, { method: "PATCH", body: { status: enable ? "active" : "disabled" } });
          toast(`Key ${key.name} ${enable ? "enabled" : "disabled"}.`, "ok");
          await refresh();
        }),
    },
    enable ? "Enable" : "Disable",
  );
  const revoke = h(
    "button",
    {
      type: "button",
      class: "danger small",
      onclick: () => {
        if (
          !confirm(`Revoke key ${key.name}? Requests with it will fail from now on; this cannot be undone.`)
        )
          return;
        busy(revoke, async () => {
          await admin(path, { method: "DELETE" });
          toast(`Key ${key.name} revoked.`, "ok");
          await refresh();
        });
      },
    },
    "Revoke",
  );
  const edit = h(
    "button",
    {
      type: "button",
      class: "secondary small",
      onclick: (/** @type {MouseEvent} */ event) => {
        const row = /** @type {HTMLElement} */ (event.currentTarget).closest("tr");
        const next = row?.nextElementSibling;
        if (next?.classList.contains("edit-row")) {
          next.remove();
          return;
        }
        row?.after(h("tr", { class: "edit-row" }, h("td", { colSpan: 8 }, limitsForm(path, key))));
      },
    },
    "Limits & scopes",
  );
  return h("div", { class: "row" }, edit, toggle, revoke);
}

/** Fields shared by "new key" and "edit limits": rpm, in-flight, caps (USD, empty = none), expiry, scopes. */
function limitFields(/** @type {any} */ key = {}) {
  const toLocal = (/** @type {string | null} */ iso) => {
    if (!iso) return "";
    const d = new Date(iso);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  };
  const cap = (/** @type {number | null | undefined} */ micros) =>
    micros === null || micros === undefined ? "" : usd(micros).replace(/[$,]/g, "");
  return [
    h(
      "label",
      null,
      "Requests / minute",
      h("input", { name: "rpm_limit", type: "number", min: 1, value: String(key.rpm_limit ?? 60) }),
    ),
    h(
      "label",
      null,
      "Max tasks in flight",
      h("input", { name: "max_inflight", type: "number", min: 1, value: String(key.max_inflight ?? 50) }),
    ),
    h(
      "label",
      null,
      "Daily cap (USD)",
      h("input", {
        name: "daily_cap",
        inputMode: "decimal",
        placeholder: "none",
        value: cap(key.daily_cap_micros),
      }),
    ),
    h(
      "label",
      null,
      "Monthly cap (USD)",
      h("input", {
        name: "monthly_cap",
        inputMode: "decimal",
        placeholder: "none",
        value: cap(key.monthly_cap_micros),
      }),
    ),
    h(
      "label",
      null,
      "Expires",
      h("input", { name: "expires_at", type: "datetime-local", value: toLocal(key.expires_at ?? null) }),
    ),
    scopeFields(key.scopes ?? null),
  ];
}

/** One checkbox per scope (all checked = every scope, the default). @param {string[] | null} scopes */
function scopeFields(scopes) {
  return h(
    "fieldset",
    { class: "wide scopes" },
    h("legend", null, "Scopes"),
    SCOPES.map((scope) =>
      h(
        "label",
        { class: "check", title: scope.hint },
        h("input", {
          type: "checkbox",
          name: "scopes",
          value: scope.name,
          checked: scopes === null || scopes.includes(scope.name),
        }),
        ` ${scope.label}`,
      ),
    ),
  );
}

/** @param {FormData} form */
function limitValues(form) {
  const capOf = (/** @type {string} */ name) => {
    const text = String(form.get(name) ?? "").trim();
    if (!text) return null;
    const micros = parseUsd(text);
    if (micros === null)
      throw new Error(`${name.replace("_", " ")}: enter an amount in USD or leave it empty.`);
    return micros;
  };
  const expires = String(form.get("expires_at") ?? "");
  const scopes = form.getAll("scopes").map(String);
  if (!scopes.length) throw new Error("Scopes: pick at least one (a key without scopes could call nothing).");
  return {
    // Every box ticked is "all scopes" (null), which also covers scopes added later.
    scopes: scopes.length === SCOPES.length ? null : scopes,
    rpm_limit: Number(form.get("rpm_limit")),
    max_inflight: Number(form.get("max_inflight")),
    daily_cap_micros: capOf("daily_cap"),
    monthly_cap_micros: capOf("monthly_cap"),
    expires_at: expires ? new Date(expires).toISOString() : null,
  };
}

/** @param {string} path @param {any} key */
function limitsForm(path, key) {
  const form = h(
    "form",
    { class: "form-grid" },
    ...limitFields(key),
    h("button", { type: "submit" }, "Save"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, async () => {
      await admin(path, { method: "PATCH", body: limitValues(new FormData(form)) });
      toast(`Limits of ${key.name} saved.`, "ok");
      await refresh();
    });
  });
  return form;
}

/** @param {any} tenant */
function newKeyForm(tenant) {
  const form = h(
    "form",
    { class: "form-grid", id: "create-key" },
    h(
      "label",
      { class: "wide" },
      "Name",
      h("input", { name: "name", required: true, maxLength: 200, placeholder: "production server" }),
    ),
    ...limitFields(),
    h("button", { type: "submit" }, "Create key"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, async () => {
      const data = new FormData(form);
      const limits = limitValues(data);
      /** @type {Record<string, unknown>} */
      const body = {
        name: String(data.get("name")).trim(),
        rpm_limit: limits.rpm_limit,
        max_inflight: limits.max_inflight,
      };
      if (limits.daily_cap_micros !== null) body.daily_cap_micros = limits.daily_cap_micros;
      if (limits.monthly_cap_micros !== null) body.monthly_cap_micros = limits.monthly_cap_micros;
      if (limits.expires_at) body.expires_at = limits.expires_at;
      if (limits.scopes) body.scopes = limits.scopes;
      const key = await admin(`/admin/tenants/${tenant.id}/keys`, { method: "POST", body });
      await refresh();
      showSecret(tenant, key);
    });
  });
  return form;
}

/** The secret exists only in this response: shown once, with copy and "use in playground". */
function showSecret(/** @type {any} */ tenant, /** @type {any} */ key) {
  const slot = $("#secret-slot");
  const code = h("code", { id: "new-key-secret" }, key.key);
  const copy = h(
    "button",
    {
      type: "button",
      class: "small",
      id: "copy-secret",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(key.key);
        } catch {
          const range = document.createRange();
          range.selectNodeContents(code);
          getSelection()?.removeAllRanges();
          getSelection()?.addRange(range);
          document.execCommand("copy");
        }
        copy.textContent = "Copied ✓";
      },
    },
    "Copy",
  );
  const use = h(
    "button",
    {
      type: "button",
      class: "secondary small",
      id: "use-in-playground",
      onclick: () => {
        session.rememberPlaygroundKey({
          secret: key.key,
          label: `${tenant.name} · ${key.name} (${key.prefix}…)`,
          tenantId: tenant.id,
          keyId: key.id,
        });
        location.assign("/console/playground");
      },
    },
    "Use in playground",
  );
  fill(
    slot,
    h(
      "div",
      { class: "secret", role: "status" },
      h("strong", null, `New key “${key.name}”: copy it now, it will not be shown again.`),
      code,
      h(
        "div",
        { class: "row" },
        copy,
        use,
        h(
          "button",
          { type: "button", class: "secondary small", onclick: () => slot.replaceChildren() },
          "Done",
        ),
      ),
    ),
  );
}
