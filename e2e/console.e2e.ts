/**
 * The operator console in a real browser (Debian's Chromium through playwright-core)
 * against the `npm start` stack: log in, create a tenant and a key, top up, run an imagine
 * in the playground to SUCCESS while its card updates live, upscale a tile, find the charge
 * in the finance page's ledger and chart, and export the CSV. Screenshots of every page
 * (laptop, plus phone-sized ones) go to docs/screenshots/ for the README's console tour.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { adminToken, api, CHROMIUM_ARGS, CHROMIUM_PATH, gatewayUrl } from "./support";

// The README's tour images are refreshed only on request (UPDATE_SCREENSHOTS=1), so a
// normal run leaves the working tree clean.
const SHOTS = fileURLToPath(
  new URL(
    process.env.UPDATE_SCREENSHOTS ? "../docs/screenshots/" : "../test-results/screenshots/",
    import.meta.url,
  ),
);
const LAPTOP = { width: 1366, height: 900 };
const PHONE = { width: 390, height: 844 };

let browser: Browser;
/** Every URL the browser asked for, to prove the console needs no other host and no secret in a URL. */
const requested: string[] = [];
/** Uncaught errors in any page: there must be none. */
const pageErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
});
afterAll(async () => {
  await browser?.close();
});
afterEach(() => {
  expect(pageErrors).toEqual([]);
});

async function newPage(viewport = LAPTOP, mobile = false): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    viewport,
    isMobile: mobile,
    hasTouch: mobile,
    acceptDownloads: true,
  });
  const page = await context.newPage();
  page.on("request", (request) => requested.push(request.url()));
  page.on("pageerror", (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  return { context, page };
}

async function shot(page: Page, name: string, fullPage = false) {
  const path = `${SHOTS}${name}.png`;
  // A full-page shot of a scrolled page would paint the sticky header mid-page.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path, fullPage });
  console.log(`screenshot: ${path}`);
}

async function logIn(page: Page, path = "/console/") {
  await page.goto(`${gatewayUrl()}${path}`);
  await page.locator("#login-token").fill(adminToken());
  await page.locator("#login-form button[type=submit]").click();
  await page.locator("#app:not([hidden])").waitFor();
}

/**
 * How far right anything on the page reaches (tables scroll inside their own wrapper and do
 * not count): more than the screen's width means clipped content or sideways scrolling.
 */
const pageWidth = (page: Page) =>
  page.evaluate(() => {
    let right = document.documentElement.scrollWidth;
    for (const element of Array.from(document.querySelectorAll("header *, main *"))) {
      if (element.closest(".table-wrap, nav, dialog")) continue;
      const box = element.getBoundingClientRect();
      if (box.width && box.height) right = Math.max(right, Math.ceil(box.right + window.scrollX));
    }
    return right;
  });

/** The card of the first task whose action (as shown) is `action`. */
const card = (page: Page, action: string) =>
  page
    .locator("article.task", { has: page.locator(".action", { hasText: new RegExp(`^${action}$`) }) })
    .first();

/** One CSV line (RFC 4180 quoting) into its cells. */
function csvCells(line: string): string[] {
  const cells: string[] = [];
  const cell = /(?:^|,)(?:"((?:[^"]|"")*)"|([^,]*))/g;
  for (const m of line.matchAll(cell))
    cells.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : (m[2] ?? ""));
  return cells;
}

const todayUtc = () => new Date().toISOString().slice(0, 10);

describe("operator console in Chromium", () => {
  it("tenant and key → top up → playground imagine live to SUCCESS → upscale → finance ledger, chart and CSV", async () => {
    const { context, page } = await newPage();
    const tenantName = `console-e2e-${Date.now()}`;

    // Tenants & keys: log in, create a tenant, top it up, issue a key (secret shown once).
    await logIn(page);
    await page.locator("#create-tenant input[name=name]").fill(tenantName);
    await page.locator("#create-tenant button[type=submit]").click();
    await expect.poll(() => page.locator("#tenant h2").textContent()).toContain(tenantName);
    await page.locator("#topup-form input[name=amount]").fill("5");
    await page.locator("#topup-form button[type=submit]").click();
    await expect.poll(() => page.locator("#tenant-balance").textContent()).toBe("$5.00");
    await page.locator("#create-key input[name=name]").fill("e2e server");
    await page.locator("#create-key input[name=daily_cap]").fill("3");
    await page.locator("#create-key button[type=submit]").click();
    const secret = (await page.locator("#new-key-secret").textContent())!.trim();
    expect(secret).toMatch(/^sk-mjg-/);
    await expect.poll(() => page.locator("#keys-table tbody tr").count()).toBe(1);
    expect(await page.locator("#keys-table tbody tr").first().textContent()).toContain("$3.00");
    await shot(page, "console-tenants");
    const tenantId = (await page.locator("#tenant p.muted code").textContent())!.trim();

    // Playground: the new key, an imagine watched live over its own SSE stream.
    await page.locator("#use-in-playground").click();
    await page.locator("#app:not([hidden])").waitFor();
    await expect.poll(() => page.locator("#account").textContent()).toContain(tenantName);
    expect(await page.locator("#play-balance").textContent()).toBe("$5.00");
    await page.locator("#imagine-form textarea[name=prompt]").fill("a red fox in the snow, e2e");
    await page.locator("#imagine-form select[name=version]").selectOption("7");
    await page.locator("#imagine-form select[name=speed]").selectOption("fast");
    await page.locator("#imagine-form select[name=size]").selectOption("16:9");
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as any).__seen = seen;
      new MutationObserver(() => {
        const c = document.querySelector("#results article.task");
        if (!c) return;
        const entry = `${c.getAttribute("data-status")} ${c.querySelector("[data-role=progress]")?.textContent}`;
        if (seen.at(-1) !== entry) seen.push(entry);
      }).observe(document.querySelector("#results")!, {
        subtree: true,
        childList: true,
        characterData: true,
      });
    });
    await page.locator("#imagine-form button[type=submit]").click();
    const imagine = card(page, "imagine");
    await imagine.waitFor();
    const imagineId = (await imagine.getAttribute("data-task-id"))!;
    expect(imagineId).toMatch(/^task_/);
    await page
      .locator(`article.task[data-task-id="${imagineId}"][data-status=SUCCESS]`)
      .waitFor({ timeout: 60_000 });
    const seen: string[] = await page.evaluate(() => (window as any).__seen);
    expect(seen[0]).not.toMatch(/^SUCCESS/);
    expect(seen.at(-1)).toBe("SUCCESS 100%");
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(requested.some((u) => u.includes(`/v1/midjourney/${imagineId}/events?token=`))).toBe(true);
    await expect.poll(() => imagine.locator("img[data-role=tile]").count()).toBe(4);
    expect(await imagine.locator("img[data-role=grid]").count()).toBe(1);
    const task = (await api("GET", `/v1/midjourney/${imagineId}`, { key: secret })).body;
    expect(task.status).toBe("SUCCESS");
    const costMicros = Math.round(task.cost * 1_000_000);
    expect(costMicros).toBeGreaterThan(0);
    const costText = `$${(costMicros / 1_000_000).toFixed(6).replace(/0+$/, "")}`;
    expect(await imagine.locator("[data-role=cost]").textContent()).toBe(costText);
    await expect.poll(() => page.locator("#play-balance").textContent()).not.toBe("$5.00");

    // Upscale one tile from the task's own buttons (task_id + index).
    await imagine.locator("button[data-label=U2]").click();
    const upscale = card(page, "upscale");
    await upscale.waitFor();
    await upscale.and(page.locator("[data-status=SUCCESS]")).waitFor({ timeout: 60_000 });
    expect(await upscale.locator("img[data-role=tile]").count()).toBe(1);
    expect(await upscale.locator("button[data-label='Vary (Region)']").count()).toBe(1);
    const upscaleId = (await upscale.getAttribute("data-task-id"))!;
    const upscaled = (await api("GET", `/v1/midjourney/${upscaleId}`, { key: secret })).body;
    expect(upscaled.action).toBe("UPSCALE");
    expect(await upscale.locator("[data-role=cost]").textContent()).toMatch(/^\$0\.\d+$/);
    expect(await page.locator("#spent").textContent()).toContain("2 tasks");
    await shot(page, "console-playground");

    // Live tasks: the tenant's tasks with their images; a new one appears and updates live.
    await page.goto(`${gatewayUrl()}/console/tasks`);
    await page.locator("#app:not([hidden])").waitFor();
    await page.locator("#filters select[name=tenant]").selectOption(tenantId);
    await page
      .locator(`article.task[data-task-id="${imagineId}"][data-status=SUCCESS] img[data-role=grid]`)
      .waitFor();
    await page.locator(`article.task[data-task-id="${upscaleId}"][data-status=SUCCESS]`).waitFor();
    await expect.poll(() => page.locator("#stream-state").textContent()).toBe("live");
    const live = await api("POST", "/v1/midjourney/generations/imagine", {
      key: secret,
      body: { prompt: "arrives over the tenant stream", speed: "fast" },
    });
    expect(live.status).toBe(200);
    const liveId = live.body.data[0].task_id;
    await page.locator(`article.task[data-task-id="${liveId}"]`).waitFor({ timeout: 20_000 });
    await page
      .locator(`article.task[data-task-id="${liveId}"][data-status=SUCCESS]`)
      .waitFor({ timeout: 60_000 });
    expect(await page.locator("article.task").first().getAttribute("data-task-id")).toBe(liveId);
    await page.locator("#filters select[name=action]").selectOption("upscale");
    await expect.poll(() => page.locator("article.task").count()).toBe(1);
    await page.locator("#filters select[name=action]").selectOption("");
    await page.locator("#filters select[name=view]").selectOption("tiles");
    await page.locator(`article.task[data-task-id="${liveId}"] img[data-role=tile]`).first().waitFor();
    await page.locator("#filters select[name=view]").selectOption("both");
    await shot(page, "console-tasks");

    // Finance: the charge in the ledger and the chart; the CSV of the same range.
    await page.goto(`${gatewayUrl()}/console/finance`);
    await page.locator("#app:not([hidden])").waitFor();
    await page.locator("#range select[name=tenant]").selectOption(tenantId);
    await page.locator("#range button[type=submit]").click();
    const charge = page.locator(`#ledger tbody tr[data-task-id="${imagineId}"][data-kind=charge]`);
    await charge.waitFor();
    expect(await charge.textContent()).toContain(`-${costText}`);
    await page.locator(`#ledger tbody tr[data-kind=topup]`).first().waitFor();
    const bar = page.locator(`#spend-chart rect[data-action=imagine][data-day="${todayUtc()}"]`);
    await bar.waitFor();
    expect(Number(await bar.getAttribute("data-net-micros"))).toBeGreaterThanOrEqual(costMicros * 2);
    expect(await page.locator(`#spend-chart rect[data-action=upscale]`).count()).toBe(1);
    expect(await page.locator(`#balances tbody tr[data-tenant-id="${tenantId}"]`).textContent()).toContain(
      tenantName,
    );
    await page.locator("#recon-status").waitFor();
    expect(await page.locator("#recon-status").textContent()).toMatch(/^(OK|\d+ breaches)$/);

    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#export").click()]);
    expect(download.suggestedFilename()).toBe(
      `ledger_${await page.inputValue("#range input[name=from]")}_${todayUtc()}.csv`,
    );
    const csv = readFileSync((await download.path())!, "utf8");
    const lines = csv.trim().split(/\r\n/);
    expect(lines[0]).toBe(
      "id,created_at,tenant_id,key_id,task_id,kind,action,amount_usd,balance_after_usd,reason,ref_id",
    );
    const rows = lines.slice(1).map(csvCells);
    const chargeRow = rows.find((r) => r[4] === imagineId && r[5] === "charge");
    expect(chargeRow).toBeDefined();
    // Cells starting with "-" are quoted against spreadsheet formula injection; the value is exact.
    expect(chargeRow![7]).toBe(`-${(costMicros / 1_000_000).toFixed(6)}`);
    expect(chargeRow![6]).toBe("imagine");
    expect(rows.filter((r) => r[5] === "topup").map((r) => r[7])).toEqual(["5.000000"]);
    expect(rows.every((r) => r[2] === tenantId)).toBe(true);
    expect(lines.length - 1).toBe(
      (await api("GET", `/admin/ledger?tenant_id=${tenantId}`, { admin: true })).body.data.length,
    );
    await shot(page, "console-finance", true);

    // The secrets never went into a URL, and nothing was fetched from another host.
    for (const url of requested.filter((u) => /^https?:/.test(u))) {
      expect(url).not.toContain(adminToken());
      expect(url).not.toContain(secret);
      expect(["127.0.0.1", "localhost"]).toContain(new URL(url).hostname);
    }
    await context.close();
  }, 240_000);

  it("phone-sized screens: tenants, playground and finance stay usable", async () => {
    const { context, page } = await newPage(PHONE, true);
    await logIn(page);
    await page.locator("#tenants-table tbody tr.clickable").first().click();
    await page.locator("#topup-form").waitFor();
    expect(await pageWidth(page)).toBeLessThanOrEqual(PHONE.width);
    await shot(page, "console-tenants-phone");
    await page.goto(`${gatewayUrl()}/console/finance`);
    await page.locator("#spend-chart").waitFor();
    expect(await pageWidth(page)).toBeLessThanOrEqual(PHONE.width);
    await shot(page, "console-finance-phone");
    await page.goto(`${gatewayUrl()}/console/playground`);
    await page.locator("#mint-tenant option").first().waitFor({ state: "attached" });
    await expect.poll(() => page.locator("#account").textContent()).toContain("tenant key");
    expect(await pageWidth(page)).toBeLessThanOrEqual(PHONE.width);
    await shot(page, "console-playground-phone");
    await context.close();
  }, 240_000);

  it("clear messages: wrong admin token, insufficient balance (402), rate limited (429), expired session", async () => {
    const { context, page } = await newPage();
    await page.goto(`${gatewayUrl()}/console/`);
    await page.locator("#login-token").fill("not-the-token");
    await page.locator("#login-form button[type=submit]").click();
    await expect.poll(() => page.locator("#login-error").textContent()).toContain("rejected");
    expect(await page.locator("#app").isHidden()).toBe(true);

    // A tenant without funds: the imagine is refused with 402 and the console says what to do.
    const broke = await api("POST", "/admin/tenants", { admin: true, body: { name: `broke-${Date.now()}` } });
    const brokeKey = await api("POST", `/admin/tenants/${broke.body.id}/keys`, {
      admin: true,
      body: { name: "no funds" },
    });
    await logIn(page, "/console/playground");
    await page.locator("#paste-key").fill(brokeKey.body.key);
    await page.locator("#paste-form button[type=submit]").click();
    await expect.poll(() => page.locator("#account").textContent()).toContain(broke.body.name);
    await page.locator("#imagine-form button[type=submit]").click();
    await expect
      .poll(() => page.locator(".toast.error").first().textContent())
      .toContain("Insufficient balance (402)");

    // A key allowed one request a minute: the second imagine is rate limited.
    const slow = await api("POST", "/admin/tenants", { admin: true, body: { name: `slow-${Date.now()}` } });
    await api("POST", `/admin/tenants/${slow.body.id}/topups`, {
      admin: true,
      body: { amount_micros: 2_000_000, reason: "e2e" },
    });
    const slowKey = await api("POST", `/admin/tenants/${slow.body.id}/keys`, {
      admin: true,
      body: { name: "one a minute", rpm_limit: 1 },
    });
    await page.locator("#paste-key").fill(slowKey.body.key);
    await page.locator("#paste-form button[type=submit]").click();
    await expect.poll(() => page.locator("#account").textContent()).toContain(slow.body.name);
    await page.locator("#imagine-form button[type=submit]").click();
    await card(page, "imagine").waitFor();
    await page.locator("#imagine-form button[type=submit]:not([disabled])").click();
    await expect.poll(() => page.locator(".toast.error").first().textContent()).toMatch(/\(429\)/);
    await shot(page, "console-errors");

    // The admin token stops working (rotated): back to the login form with the reason.
    await page.evaluate(() => sessionStorage.setItem("mjg.console.adminToken", "rotated-away"));
    await page.goto(`${gatewayUrl()}/console/finance`);
    await expect.poll(() => page.locator("#login-error").textContent()).toContain("log in again");
    expect(await page.locator("#login").isVisible()).toBe(true);
    await context.close();
  }, 240_000);

  it("/docs renders Swagger UI from the Worker's own assets, with no other host", async () => {
    const { context, page } = await newPage();
    const hosts = new Set<string>();
    page.on("request", (request) => hosts.add(new URL(request.url()).host));
    await page.goto(`${gatewayUrl()}/docs`);
    // Swagger UI parses a 1.7 MB bundle and renders every operation: slow on a busy 2-core machine.
    await page.locator(".swagger-ui .opblock").first().waitFor({ timeout: 90_000 });
    expect(await page.locator(".swagger-ui .opblock").count()).toBeGreaterThan(40);
    expect(await page.locator(".swagger-ui .info .title").textContent()).toContain("Midjourney edge gateway");
    expect([...hosts]).toEqual([new URL(gatewayUrl()).host]);
    await shot(page, "api-docs");
    await context.close();
  }, 240_000);
});
