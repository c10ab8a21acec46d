/**
 * A tenant's web page in headless Chromium (Debian's, through playwright-core) follows a
 * task with a plain EventSource and a stream token its server minted with the sub-key.
 * The page is served from another origin (a tiny local server), so the browser enforces
 * CORS against the tenant's configured origins.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, CHROMIUM_ARGS, CHROMIUM_PATH, gatewayUrl, tenantWithKey } from "./support";

const PAGE = readFileSync(fileURLToPath(new URL("./fixtures/stream-page.html", import.meta.url)), "utf8");
const RESULTS = fileURLToPath(new URL("../test-results/", import.meta.url));

let server: Server;
let pageOrigin: string;
let browser: Browser;

beforeAll(async () => {
  server = createServer((request, response) => {
    if ((request.url ?? "/").startsWith("/stream")) {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      response.end(PAGE);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  pageOrigin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** A task and, from "the tenant's server", a stream token scoped to it. */
async function taskWithToken(corsOrigins: string[]) {
  const { key } = await tenantWithKey({ corsOrigins });
  const submitted = await api("POST", "/v1/midjourney/generations/imagine", {
    key,
    body: { prompt: "a lighthouse at dusk, seen from the browser" },
  });
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(200);
  const taskId: string = submitted.body.data[0].task_id;
  const minted = await api("POST", "/v1/stream-tokens", {
    key,
    body: { task_ids: [taskId], ttl_seconds: 120 },
  });
  expect(minted.status, JSON.stringify(minted.body)).toBe(201);
  return { key, taskId, token: minted.body.token as string };
}

async function openPage(taskId: string, token: string) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  const requests: Array<{ url: string; headers: Promise<Record<string, string>> }> = [];
  const responses: Array<{ url: string; headers: Record<string, string> }> = [];
  const errors: string[] = [];
  // allHeaders() includes what the network stack adds (Origin, cookies), unlike headers().
  page.on("request", (request) => requests.push({ url: request.url(), headers: request.allHeaders() }));
  page.on("response", (response) => responses.push({ url: response.url(), headers: response.headers() }));
  page.on("pageerror", (error) => errors.push(error.message));
  const query = new URLSearchParams({ gateway: gatewayUrl(), task: taskId, token });
  await page.goto(`${pageOrigin}/stream?${query}`);
  return { page, requests, responses, errors, close: () => context.close() };
}

const statusOf = (page: Page) => page.locator("#status").getAttribute("data-status");

describe("browser EventSource with a stream token", () => {
  it("renders the task live until SUCCESS, across origins, without ever seeing the sub-key", async () => {
    const { key, taskId, token } = await taskWithToken([pageOrigin]);
    const { page, requests, responses, errors, close } = await openPage(taskId, token);
    try {
      await page.locator('#status[data-status="SUCCESS"]').waitFor({ timeout: 60_000 });
      expect(await page.locator("#status").textContent()).toBe("SUCCESS");
      const items = await page.locator("#events li").allTextContents();
      expect(items.length).toBeGreaterThanOrEqual(1);
      expect(items.at(-1)).toMatch(/^#\d+ SUCCESS 100%$/);
      const ids = items.map((item) => Number(/^#(\d+)/.exec(item)![1]));
      expect(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1)).toBe(true);
      await page.locator("#grid:not([hidden])").waitFor();

      const final = await api("GET", `/v1/midjourney/${taskId}`, { key });
      expect(final.body.status).toBe("SUCCESS");
      expect(await page.locator("#grid").getAttribute("src")).toBe(final.body.grid_image_url);

      // The stream request crossed origins with the token only.
      const stream = requests.find((r) => r.url.includes(`/v1/midjourney/${taskId}/events`));
      expect(stream, JSON.stringify(requests.map((r) => r.url))).toBeDefined();
      expect(new URL(stream!.url).origin).not.toBe(pageOrigin);
      expect((await stream!.headers).origin).toBe(pageOrigin);
      const answer = responses.find((r) => r.url === stream!.url);
      expect(answer!.headers["access-control-allow-origin"]).toBe(pageOrigin);
      expect(answer!.headers["content-type"]).toMatch(/^text\/event-stream/);
      for (const request of requests) {
        expect(request.url).not.toContain(key);
        expect(Object.values(await request.headers).join(" ")).not.toContain(key);
      }
      expect(errors).toEqual([]);

      mkdirSync(RESULTS, { recursive: true });
      const shot = `${RESULTS}browser-stream.png`;
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`screenshot: ${shot}`);
    } finally {
      await close();
    }
  });

  it("Chromium's EventSource that never closes itself: after the terminal event its reconnect gets 204 and it stays CLOSED", async () => {
    const { key, taskId, token } = await taskWithToken([pageOrigin]);
    const done = await api("GET", `/v1/midjourney/${taskId}`, { key });
    expect(done.status).toBe(200);
    const { page, responses, close } = await openPage(taskId, token);
    try {
      await page.locator('#status[data-status="SUCCESS"]').waitFor({ timeout: 60_000 });
      const url = `${gatewayUrl()}/v1/midjourney/${taskId}/events?token=${encodeURIComponent(token)}`;
      const result = await page.evaluate(
        (streamUrl) =>
          new Promise<{ state: number; statuses: string[] }>((resolve) => {
            const source = new EventSource(streamUrl);
            const statuses: string[] = [];
            source.addEventListener("status", (event) =>
              statuses.push(JSON.parse((event as MessageEvent).data).status),
            );
            const started = Date.now();
            const timer = setInterval(() => {
              if (source.readyState === EventSource.CLOSED || Date.now() - started > 20_000) {
                clearInterval(timer);
                resolve({ state: source.readyState, statuses });
              }
            }, 100);
          }),
        url,
      );
      expect(result.statuses).toEqual(["SUCCESS"]);
      expect(result.state).toBe(2); // EventSource.CLOSED: it will not reconnect again
      const ends = responses.filter((r) => r.url === url);
      expect(ends.length).toBeGreaterThanOrEqual(1);
    } finally {
      await close();
    }
  });

  it("a page on an origin the tenant did not allow gets no stream", async () => {
    const { taskId, token } = await taskWithToken(["https://elsewhere.example.com"]);
    const { page, close } = await openPage(taskId, token);
    try {
      await page.locator('#status[data-status="error"]').waitFor({ timeout: 15_000 });
      expect(await page.locator("#events li").count()).toBe(0);
      expect(await statusOf(page)).toBe("error");
    } finally {
      await close();
    }
  });
});
