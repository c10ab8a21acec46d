import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  addFault,
  control,
  imagine,
  newKey,
  query,
  simFetch,
  submit,
  submitOk,
  upscaled,
} from "./sim-helpers";

// Several upstream accounts at once: each key has its own counters and faults.

const stats = async (key?: string) => (await control("GET", key ? `/stats?key=${key}` : "/stats")).body;

const tasksOf = async (key: string) => (await control("GET", `/tasks?key=${key}`)).body as any[];

/** The simulator's own task for the key stays open (relax imagine: 100 s of real time). */
const slowTasks = (key: string) => control("POST", "/config", { time_scale: 1, key });

describe("per-key counters", () => {
  it("count accepted and refused submits, tasks made and queries, per key", async () => {
    const [a, b] = [newKey(), newKey()];
    const first = await imagine(a);
    await submitOk(a, "imagine", { prompt: "twice", repeat: 2 });
    await submitOk(a, "upscale", { task_id: first, index: 1 });
    expect((await submit(a, "nonsense", { prompt: "x" })).status).toBe(400);
    expect((await simFetch("POST", "/v1/midjourney/generations", { key: a, rawBody: "[1" })).status).toBe(
      400,
    );
    await query(a, first);
    await query(a, first);
    await imagine(b);
    expect(await stats(a)).toEqual({
      submits: 5,
      submits_accepted: 3,
      submits_refused: 2,
      tasks_created: 4,
      queries: 2,
      queries_by_task: { [first]: 2 },
      open_tasks: 0,
      peak_open_tasks: 0,
    });
    expect(await stats(b)).toMatchObject({
      submits: 1,
      submits_accepted: 1,
      submits_refused: 0,
      tasks_created: 1,
    });
  });

  it("track open tasks and the peak open at once, also under concurrent submits", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key);
    await slowTasks(key);
    await Promise.all(Array.from({ length: 40 }, (_, i) => imagine(key, `burst ${i}`)));
    expect(await stats(key)).toMatchObject({ submits_accepted: 42, open_tasks: 40, peak_open_tasks: 40 });
    // Inpaint waiting in MODAL is open too.
    expect((await submit(key, "inpaint", { task_id: upscale })).body.data[0].status).toBe("modal");
    expect(await stats(key)).toMatchObject({ open_tasks: 41, peak_open_tasks: 41 });

    await control("POST", "/clock", { advance_ms: 200_000, key });
    expect(await stats(key)).toMatchObject({ open_tasks: 1, peak_open_tasks: 41 });
    await imagine(key, "after the burst");
    expect(await stats(key)).toMatchObject({ open_tasks: 2, peak_open_tasks: 41 });
    await control("POST", `/reset?key=${key}`);
  });

  it("reset per key: zero counters, the peak restarts from the tasks open now, other keys untouched", async () => {
    const [key, other] = [newKey(), newKey()];
    await slowTasks(key);
    for (let i = 0; i < 3; i++) await imagine(key, `open ${i}`);
    await imagine(other);
    const reset = await simFetch("DELETE", `/_sim/stats?key=${key}`);
    expect(reset.status).toBe(200);
    expect(reset.body).toMatchObject({
      submits: 0,
      submits_accepted: 0,
      queries: 0,
      open_tasks: 3,
      peak_open_tasks: 3,
    });
    expect(await stats(other)).toMatchObject({ submits: 1, submits_accepted: 1 });
    expect(await tasksOf(key)).toHaveLength(3);
    await control("POST", "/clock", { advance_ms: 200_000, key });
    await simFetch("DELETE", `/_sim/stats?key=${key}`);
    expect(await stats(key)).toMatchObject({ open_tasks: 0, peak_open_tasks: 0 });
    await imagine(key);
    await imagine(key);
    expect(await stats(key)).toMatchObject({ submits: 2, open_tasks: 2, peak_open_tasks: 2 });
  });

  it("tasks that finish at once are never open", async () => {
    const key = newKey();
    await Promise.all([imagine(key), imagine(key)]);
    expect(await stats(key)).toMatchObject({ submits_accepted: 2, open_tasks: 0, peak_open_tasks: 0 });
  });
});

describe("one account refusing, another serving", () => {
  it('count "always": every submit of that key is refused until cleared; queries and other keys are unaffected', async () => {
    const [down, up] = [newKey(), newKey()];
    const before = await imagine(down);
    const fault = await addFault({ type: "status", status: 500, on: "submit", count: "always", key: down });
    expect(fault).toMatchObject({ remaining: null, on: "submit", key: down });
    for (let i = 0; i < 5; i++) {
      const refused = await submit(down, "imagine", { prompt: `try ${i}` });
      expect(refused.status).toBe(500);
    }
    expect((await query(down, before)).status).toBe(200);
    await imagine(up);
    expect(await tasksOf(down)).toHaveLength(1);
    expect(await stats(down)).toMatchObject({
      submits: 6,
      submits_accepted: 1,
      submits_refused: 5,
      queries: 1,
    });
    expect(await stats(up)).toMatchObject({ submits: 1, submits_accepted: 1, submits_refused: 0 });
    expect((await control("GET", `/faults?key=${down}`)).body).toHaveLength(1);
    await simFetch("DELETE", `/_sim/faults?key=${down}`);
    await imagine(down);
  });

  it("filtered by route: a 429 on imagine only leaves follow-ups alone", async () => {
    const key = newKey();
    const grid = await imagine(key);
    await addFault({ type: "status", status: 429, retry_after: 3, action: "imagine", count: "always", key });
    const limited = await submit(key, "imagine", { prompt: "x" });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("3");
    await submitOk(key, "upscale", { task_id: grid, index: 2 });
    expect((await submit(key, "imagine", { prompt: "y" })).status).toBe(429);
    await simFetch("DELETE", `/_sim/faults?key=${key}`);
  });

  it('count must be a positive integer or "always"', async () => {
    for (const count of [0, -1, "forever", 1.5]) {
      expect((await control("POST", "/faults", { type: "status", count })).status, String(count)).toBe(400);
    }
  });
});

describe("connection failures", () => {
  async function fetchFails(key: string, prompt: string, via: "binding" | "outbound"): Promise<string> {
    const init = {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt }),
    };
    const path = "/v1/midjourney/generations/imagine";
    try {
      // "outbound" is the gateway's own path: a plain fetch to the upstream host, served by the simulator.
      const response =
        via === "binding"
          ? await env.SIMULATOR.fetch(`http://sim.test${path}`, init)
          : await fetch(`http://upstream.test${path}`, init);
      return `answered ${response.status}`;
    } catch (error) {
      return String(error);
    }
  }

  it("refuse: fetch() rejects and nothing is made (a clear refusal)", async () => {
    const key = newKey();
    await addFault({ type: "refuse", on: "submit", count: 2, key });
    expect(await fetchFails(key, "refused 1", "binding")).toMatch(/connection refused \(simulated\)/);
    expect(await fetchFails(key, "refused 2", "outbound")).toMatch(/connection refused \(simulated\)/);
    expect(await tasksOf(key)).toEqual([]);
    expect(await stats(key)).toMatchObject({ submits: 2, submits_accepted: 0, submits_refused: 2 });
  });

  it("cut: fetch() rejects after the task was made (ambiguous)", async () => {
    const key = newKey();
    await addFault({ type: "cut", on: "submit", key });
    expect(await fetchFails(key, "made but cut", "outbound")).toMatch(/connection lost \(simulated\)/);
    expect((await tasksOf(key)).map((t) => t.prompt)).toEqual(["made but cut"]);
    expect(await stats(key)).toMatchObject({ submits: 1, submits_accepted: 1, submits_refused: 0 });
  });

  it("hang past the caller's timeout after making the task, on submit only", async () => {
    const key = newKey();
    const made = await imagine(key, "made before");
    await addFault({ type: "hang", on: "submit", process: true, count: "always", key });
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 300);
    const hung = simFetch("POST", "/v1/midjourney/generations/imagine", {
      key,
      body: { prompt: "hung" },
      signal: controller.signal,
    }).then(
      () => "answered",
      (error) => String(error),
    );
    expect(await hung).toMatch(/abort/i);
    clearTimeout(timer);
    expect((await query(key, made)).status).toBe(200);
    expect((await tasksOf(key)).map((t) => t.prompt)).toEqual(["made before", "hung"]);
    await simFetch("DELETE", `/_sim/faults?key=${key}`);
  });
});
