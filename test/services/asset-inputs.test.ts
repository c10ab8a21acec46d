/**
 * Feeding a hosted result back in (issue 14): an image input (a field or a URL inside the
 * prompt) that is one of this gateway's /assets/… links reaches the upstream as a fresh,
 * short-lived signed link of the same file (so an expired link of the tenant still works);
 * a tampered or unknown link, or another tenant's file, is a 400 naming the field with
 * nothing charged or forwarded. The simulator records what it received.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { checkAssetLink, signAssetLink } from "../../src/domain/asset-links";
import { INPUT_LINK_TTL_SECONDS } from "../../src/services/asset-inputs";
import { balanceOf, driveToEnd, sim, submit, tenantWithKey } from "../helpers";

const UPSTREAM_KEY = "sk-sim-gateway-tests";
const SECRET = "test-asset-signing-secret";
const GATEWAY = "http://gateway.test";

let owner: { tenantId: string; key: string; view: Record<string, any> };

beforeAll(async () => {
  const t = await tenantWithKey(50_000_000, {}, { asset_mode: "hosted" });
  const submitted = await submit(t.key, "imagine", { prompt: `source ${crypto.randomUUID()}` });
  const view = await driveToEnd(submitted.body.data[0].task_id, t.key);
  owner = { tenantId: t.tenantId, key: t.key, view };
});

/** What the upstream received for the task whose prompt carries `marker`. */
async function received(marker: string): Promise<{ prompt: string; image_urls: string[] }> {
  const tasks = (await sim("GET", `/_sim/tasks?key=${UPSTREAM_KEY}`)) as {
    prompt: string;
    image_urls: string[];
  }[];
  const task = tasks.find((t) => t.prompt.includes(marker));
  expect(task, marker).toBeDefined();
  return task!;
}

async function expectFreshLinkOfSameFile(sent: string, forwarded: string) {
  expect(forwarded).not.toBe(sent);
  const before = new URL(sent);
  const after = new URL(forwarded);
  expect(after.origin + after.pathname).toBe(before.origin + before.pathname);
  const exp = Number(after.searchParams.get("exp"));
  const now = Math.floor(Date.now() / 1000);
  expect(exp).toBeGreaterThan(now);
  expect(exp).toBeLessThanOrEqual(now + INPUT_LINK_TTL_SECONDS + 5);
  expect(
    await checkAssetLink(
      after.pathname,
      after.searchParams.get("exp")!,
      after.searchParams.get("sig")!,
      SECRET,
      now,
    ),
  ).toBe("valid");
}

describe("own hosted files as inputs", () => {
  it("image_urls and a URL in the prompt reach the upstream as fresh short-lived links", async () => {
    const marker = crypto.randomUUID();
    const image = owner.view.image_urls[0] as string;
    const grid = owner.view.grid_image_url as string;
    const response = await submit(owner.key, "imagine", {
      prompt: `${grid} a fox like this ${marker}`,
      image_urls: [image],
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const upstream = await received(marker);
    expect(upstream.image_urls).toHaveLength(1);
    await expectFreshLinkOfSameFile(image, upstream.image_urls[0]!);
    const promptLink = upstream.prompt.split(" ")[0]!;
    await expectFreshLinkOfSameFile(grid, promptLink);
    expect(upstream.prompt).not.toContain(grid);
  });

  it("the tenant's own expired link still works: the upstream gets a fresh one", async () => {
    const marker = crypto.randomUUID();
    const path = new URL(owner.view.image_urls[1]).pathname.replace(/^\/assets\//, "");
    const expired = await signAssetLink(GATEWAY, path, Math.floor(Date.now() / 1000) - 60, SECRET);
    const response = await submit(owner.key, "describe", { image_urls: [expired] });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const imagine = await submit(owner.key, "imagine", { prompt: `again ${marker}`, image_urls: [expired] });
    expect(imagine.status).toBe(200);
    await expectFreshLinkOfSameFile(expired, (await received(marker)).image_urls[0]!);
  });

  it("a tampered link is 400 asset_input_invalid naming the field, nothing charged or forwarded", async () => {
    const tampered = new URL(owner.view.image_urls[2]);
    tampered.pathname = tampered.pathname.replace(/[^/]+$/, "grid.png");
    const before = await balanceOf(owner.tenantId);
    const marker = crypto.randomUUID();
    const response = await submit(owner.key, "imagine", {
      prompt: `tampered ${marker}`,
      image_urls: [tampered.toString()],
    });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: "asset_input_invalid", field: "image_urls" });
    expect(await balanceOf(owner.tenantId)).toBe(before);
    const tasks = (await sim("GET", `/_sim/tasks?key=${UPSTREAM_KEY}`)) as { prompt: string }[];
    expect(tasks.some((t) => t.prompt.includes(marker))).toBe(false);
  });

  it("another tenant's file is 400 asset_input_not_yours, nothing charged", async () => {
    const other = await tenantWithKey(10_000_000, {}, { asset_mode: "hosted" });
    const before = await balanceOf(other.tenantId);
    const response = await submit(other.key, "imagine", {
      prompt: `${owner.view.grid_image_url} borrowed`,
    });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: "asset_input_not_yours", field: "prompt" });
    expect(await balanceOf(other.tenantId)).toBe(before);
  });
});

describe("capability links as inputs", () => {
  it("reach the upstream as a fresh signed link of the same file; an unknown token is 400", async () => {
    const t = await tenantWithKey(50_000_000, {}, { asset_mode: "hosted", asset_links: "capability" });
    const first = await submit(t.key, "imagine", { prompt: `cap source ${crypto.randomUUID()}` });
    const view = await driveToEnd(first.body.data[0].task_id, t.key);
    const marker = crypto.randomUUID();
    const response = await submit(t.key, "imagine", {
      prompt: `cap ${marker}`,
      image_urls: [view.image_urls[0]],
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const forwarded = new URL((await received(marker)).image_urls[0]!);
    expect(forwarded.pathname).toMatch(new RegExp(`^/assets/t/${t.tenantId}/task_\\w+/0\\.png$`));
    expect(forwarded.searchParams.get("sig")).toBeTruthy();

    const unknown = await submit(t.key, "imagine", {
      prompt: "cap unknown",
      image_urls: [`${GATEWAY}/assets/c/AAAAAAAAAAAAAAAAAAAAAA/0.png`],
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ code: "asset_input_invalid", field: "image_urls" });
    const foreign = await submit(owner.key, "imagine", {
      prompt: "cap foreign",
      image_urls: [view.image_urls[0]],
    });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.code).toBe("asset_input_not_yours");
  });
});

describe("the simulator's record of inputs", () => {
  it("keeps image_urls exactly as sent when they are not ours", async () => {
    const marker = crypto.randomUUID();
    const response = await submit(owner.key, "imagine", {
      prompt: `elsewhere ${marker}`,
      image_urls: ["https://example.com/cat.png"],
    });
    expect(response.status).toBe(200);
    expect((await received(marker)).image_urls).toEqual(["https://example.com/cat.png"]);
    expect(env.ASSETS_BUCKET).toBeDefined();
  });
});
