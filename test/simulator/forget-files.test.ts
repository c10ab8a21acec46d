import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { control, expectError, imagine, newKey, submitOk, task } from "./sim-helpers";

// The CDN forgets files on command, as upstream links expire; the tasks stay queryable.

const status = async (url: string) => (await env.SIMULATOR.fetch(url)).status;

async function filesOf(key: string, taskId: string): Promise<string[]> {
  const view = await task(key, taskId);
  return [view.grid_image_url, ...view.image_urls, ...(view.video_urls ?? [])].filter(Boolean);
}

describe("forgetting files", () => {
  it("one task: its files answer 404, the task still answers with the same URLs, other tasks keep theirs", async () => {
    const key = newKey();
    const [doomed, kept] = [await imagine(key, "doomed"), await imagine(key, "kept")];
    const urls = await filesOf(key, doomed);
    expect(urls).toHaveLength(5);
    for (const url of urls) expect(await status(url)).toBe(200);

    const forgotten = await control("POST", `/tasks/${doomed}/forget-files`);
    expect(forgotten.status, forgotten.text).toBe(200);
    expect(forgotten.body).toEqual({ task_id: doomed, files: "forgotten" });
    for (const url of urls) expect(await status(url), url).toBe(404);
    expect(await status(urls[0]!.replace(".png", ".svg"))).toBe(404);
    expect(await filesOf(key, doomed)).toEqual(urls);
    for (const url of await filesOf(key, kept)) expect(await status(url)).toBe(200);
    // Again is harmless.
    expect((await control("POST", `/tasks/${doomed}/forget-files`)).status).toBe(200);
  });

  it("404s an unknown task", async () => {
    await expectError(
      await control("POST", "/tasks/task_01KV52C0TEJSYZMCG0NCS4YWKK/forget-files"),
      404,
      "not found",
      3,
    );
  });

  it("a whole key: every task it has now (videos too), not later ones nor other keys'", async () => {
    const [key, other] = [newKey(), newKey()];
    const grid = await imagine(key);
    const video = await submitOk(key, "video", { image_urls: ["https://example.com/a.png"], batch_size: 2 });
    const others = await imagine(other);
    const answer = await control("POST", `/forget-files?key=${key}`);
    expect(answer.body).toEqual({ key, forgotten: 2 });
    for (const url of [...(await filesOf(key, grid)), ...(await filesOf(key, video))]) {
      expect(await status(url), url).toBe(404);
    }
    for (const url of await filesOf(other, others)) expect(await status(url)).toBe(200);
    const later = await imagine(key);
    for (const url of await filesOf(key, later)) expect(await status(url)).toBe(200);
    expect((await control("POST", "/forget-files")).status).toBe(400);
  });

  it("files also go when the task does: past the 3-day retention, or a reset of the key", async () => {
    const [old, reset] = [newKey(), newKey()];
    const aged = await imagine(old);
    const gone = await imagine(reset);
    const [agedUrl, goneUrl] = [(await filesOf(old, aged))[0]!, (await filesOf(reset, gone))[0]!];
    await control("POST", "/clock", { advance_ms: 3 * 24 * 3600 * 1000 + 1, key: old });
    expect(await status(agedUrl)).toBe(404);
    await control("POST", `/reset?key=${reset}`);
    expect(await status(goneUrl)).toBe(404);
  });
});
