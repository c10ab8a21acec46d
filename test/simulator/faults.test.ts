import { describe, expect, it } from "vitest";
import { addFault, control, imagine, newKey, query, simFetch, submit, submitOk, task } from "./sim-helpers";

// Every fault is scoped to a fresh key: other test files share this simulator.

describe("response faults", () => {
  it("status: answers the given status once, then normally", async () => {
    const key = newKey();
    const fault = await addFault({ type: "status", status: 503, key });
    expect(fault).toMatchObject({ type: "status", on: "any", status: 503, remaining: 1, key });
    const failed = await submit(key, "imagine", { prompt: "x" });
    expect(failed.status).toBe(503);
    expect(failed.body.error).toMatchObject({ code: 503, type: "upstream_error" });
    expect(await control("GET", `/tasks?key=${key}`)).toMatchObject({ body: [] });
    expect((await submit(key, "imagine", { prompt: "x" })).status).toBe(200);
  });

  it("status 429 carries Retry-After; 502 is MJ code 9", async () => {
    const key = newKey();
    await addFault({ type: "status", status: 429, retry_after: 7, key });
    await addFault({ type: "status", status: 502, key });
    const limited = await submit(key, "imagine", { prompt: "x" });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("7");
    expect(limited.body.error.type).toBe("rate_limit_error");
    const rejected = await submit(key, "imagine", { prompt: "x" });
    expect(rejected.status).toBe(502);
    expect(rejected.body.error).toMatchObject({ code: 9, message: "Service rejected" });
  });

  it("count and FIFO order; on=query leaves submits alone", async () => {
    const key = newKey();
    await addFault({ type: "status", status: 500, on: "query", count: 2, key });
    await addFault({ type: "status", status: 503, on: "query", key });
    const id = await imagine(key);
    expect((await query(key, id)).status).toBe(500);
    expect((await query(key, id)).status).toBe(500);
    expect((await query(key, id)).status).toBe(503);
    expect((await query(key, id)).status).toBe(200);
  });

  it("filters on task_id, action and prompt_contains", async () => {
    const key = newKey();
    const a = await imagine(key, "alpha");
    const b = await imagine(key, "beta");
    await addFault({ type: "status", status: 500, on: "query", task_id: b, key });
    expect((await query(key, a)).status).toBe(200);
    expect((await query(key, b)).status).toBe(500);

    await addFault({ type: "status", status: 500, action: "upscale", key });
    expect((await submit(key, "variation", { task_id: a, index: 1 })).status).toBe(200);
    expect((await submit(key, "upscale", { task_id: a, index: 1 })).status).toBe(500);

    // On queries, action and prompt filters look at the task queried.
    await addFault({
      type: "status",
      status: 500,
      on: "query",
      action: "IMAGINE",
      prompt_contains: "alp",
      key,
    });
    expect((await query(key, b)).status).toBe(200);
    expect((await query(key, a)).status).toBe(500);

    await addFault({ type: "status", status: 500, on: "submit", prompt_contains: "gamma", key });
    expect((await submit(key, "imagine", { prompt: "delta" })).status).toBe(200);
    expect((await submit(key, "imagine", { prompt: "gamma ray" })).status).toBe(500);
  });

  it("a fault for another key never fires", async () => {
    const key = newKey();
    const other = newKey();
    await addFault({ type: "status", status: 500, key: other });
    expect((await submit(key, "imagine", { prompt: "x" })).status).toBe(200);
    expect((await control("GET", `/faults?key=${other}`)).body).toHaveLength(1);
    expect((await control("DELETE", `/faults?key=${other}`)).body).toEqual({ cleared: 1 });
    expect((await control("GET", `/faults?key=${other}`)).body).toEqual([]);
  });

  it("process: true handles the request before failing the answer", async () => {
    const key = newKey();
    await addFault({ type: "status", status: 502, on: "submit", process: true, key });
    expect((await submit(key, "imagine", { prompt: "ghost" })).status).toBe(502);
    const tasks = (await control("GET", `/tasks?key=${key}`)).body;
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ action: "imagine", prompt: "ghost", status: "SUCCESS" });
  });

  it("slow: answers normally after delay_ms", async () => {
    const key = newKey();
    await addFault({ type: "slow", delay_ms: 300, on: "submit", key });
    const started = Date.now();
    const response = await submit(key, "imagine", { prompt: "x" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(response.status).toBe(200);
    expect(response.body.data[0].status).toBe("submitted");
  });

  it("hang: does not answer for delay_ms (default 10 minutes), then 504", async () => {
    const key = newKey();
    await addFault({ type: "hang", delay_ms: 300, key });
    const started = Date.now();
    const response = await submit(key, "imagine", { prompt: "x" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(response.status).toBe(504);
    expect(response.headers.get("content-type")).toContain("text/html");

    // The default hang outlasts a client timeout.
    await addFault({ type: "hang", key });
    const timedOut = simFetch("GET", "/v1/midjourney/task_01KV52C0TEJSYZMCG0NCS4YWKK", {
      key,
      signal: AbortSignal.timeout(200),
    });
    await expect(timedOut).rejects.toThrow();
  });

  it("garbage: 200 with a body that is not JSON", async () => {
    const key = newKey();
    await addFault({ type: "garbage", key });
    const response = await submit(key, "imagine", { prompt: "x" });
    expect(response.status).toBe(200);
    expect(() => JSON.parse(response.text)).toThrow();
  });

  it("html: 502 with an HTML proxy error page", async () => {
    const key = newKey();
    await addFault({ type: "html", on: "query", key });
    const id = await imagine(key);
    const response = await query(key, id);
    expect(response.status).toBe(502);
    expect(response.headers.get("content-type")).toContain("text/html");
    expect(response.text).toContain("<html>");
    expect(response.text).toContain("502 Bad Gateway");
  });

  it("truncated: 200 with the real answer cut short (the submit did go through)", async () => {
    const key = newKey();
    const id = await imagine(key);
    const full = await query(key, id);
    await addFault({ type: "truncated", on: "query", key });
    const cut = await query(key, id);
    expect(cut.status).toBe(200);
    expect(() => JSON.parse(cut.text)).toThrow();
    expect(full.text.startsWith(cut.text)).toBe(true);

    await addFault({ type: "truncated", on: "submit", key });
    const submitted = await submit(key, "imagine", { prompt: "half" });
    expect(submitted.status).toBe(200);
    expect(() => JSON.parse(submitted.text)).toThrow();
    const tasks = (await control("GET", `/tasks?key=${key}`)).body;
    expect(tasks.map((t: any) => t.prompt)).toContain("half");
  });
});

describe("fail_task", () => {
  it("makes the next matching created task end in FAILURE with the reason", async () => {
    const key = newKey();
    await addFault({ type: "fail_task", reason: "Banned prompt detected", prompt_contains: "doomed", key });
    const fine = await imagine(key, "a fine day");
    const doomed = await imagine(key, "a doomed day");
    const later = await imagine(key, "another doomed day");
    expect((await task(key, fine)).status).toBe("SUCCESS");
    expect(await task(key, doomed)).toMatchObject({
      status: "FAILURE",
      fail_reason: "Banned prompt detected",
    });
    expect((await task(key, later)).status).toBe("SUCCESS");
  });

  it("filters on action and applies to /modal too", async () => {
    const key = newKey();
    await addFault({ type: "fail_task", action: "modal", key });
    const grid = await imagine(key);
    const upscale = await submitOk(key, "upscale", { task_id: grid, index: 1 });
    const inpaint = await submitOk(key, "inpaint", { task_id: upscale });
    await submitOk(key, "modal", { task_id: inpaint });
    const view = await task(key, inpaint);
    expect(view.status).toBe("FAILURE");
    expect(view.fail_reason).toContain("fail_task");
  });
});

describe("fault control API", () => {
  it("rejects malformed faults", async () => {
    for (const body of [
      {},
      { type: "explode" },
      { type: "status", on: "sometimes" },
      { type: "slow", delay: 5 },
    ]) {
      const response = await control("POST", "/faults", body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.message).toBeTypeOf("string");
    }
  });
});

describe("stats", () => {
  it("counts submits and queries per task for a key", async () => {
    const key = newKey();
    const a = await imagine(key);
    const b = await imagine(key);
    await query(key, a);
    await query(key, a);
    await simFetch("GET", `/v1/tasks/${b}`, { key });
    await addFault({ type: "status", status: 503, on: "query", key });
    await query(key, b); // faulted calls still reach the upstream: counted
    expect((await control("GET", `/stats?key=${key}`)).body).toEqual({
      submits: 2,
      submits_accepted: 2,
      submits_refused: 0,
      tasks_created: 2,
      queries: 4,
      queries_by_task: { [a]: 2, [b]: 2 },
      open_tasks: 0,
      peak_open_tasks: 0,
    });
    const global = (await control("GET", "/stats")).body;
    expect(global.submits).toBeGreaterThanOrEqual(2);
    expect(global.queries_by_task[a]).toBe(2);
  });
});
