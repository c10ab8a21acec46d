/**
 * The benchmarks' floor probe (development only): the least a submit and a query must do on
 * the stack, run against the real D1, a real task object and the simulator. It must do each
 * step for real (or fail), and it must never leave money, tasks or objects behind.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { FloorRefusal, floorProbe, floorRequestOf, runFloor } from "../src/floor-probe";
import { ADMIN, balanceOf, driveToEnd, submit, tenantWithKey } from "./helpers";
import { expectSubmitted, fault, faultPending, simTasks } from "./routes/route-helpers";

const probe = (query: string) => floorRequestOf(new URL(`http://gateway.test/_debug/floor?${query}`));
const count = async (table: string) =>
  (await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table}`).first<{ n: number }>())!.n;
const floorSubmits = async () => (await simTasks()).filter((t) => t.prompt === "floor probe").length;

describe("floor probe", () => {
  it("reads its steps in order and refuses unknown or incomplete ones", () => {
    expect(probe("steps=d1,object,upstream").steps).toEqual(["d1", "object", "upstream"]);
    expect(probe("steps=query&task=task_x&tenant=ten_y")).toEqual({
      steps: ["query"],
      taskId: "task_x",
      tenantId: "ten_y",
    });
    expect(probe("steps=").steps).toEqual([]);
    expect(() => probe("")).toThrow(FloorRefusal);
    expect(() => probe("steps=d1,charge")).toThrow(/steps: none or more of d1, object/);
    expect(() => probe("steps=query&task=task_x")).toThrow(/query: needs task and tenant/);
  });

  it("calls the upstream once per submit floor and polls that task, without a charge, task or ledger row", async () => {
    const before = { tasks: await count("tasks"), ledger: await count("ledger"), sim: await floorSubmits() };
    const steps = await runFloor(env, probe("steps=d1,object,upstream,poll,d1"));
    expect(steps).toEqual(["d1", "object", "upstream", "poll", "d1"]);
    expect(await floorSubmits()).toBe(before.sim + 1);
    expect(await count("tasks")).toBe(before.tasks);
    expect(await count("ledger")).toBe(before.ledger);
  });

  it("fails when the upstream refuses, so a failing floor is never counted as one", async () => {
    const injected = await fault({
      on: "submit",
      prompt_contains: "floor probe",
      type: "status",
      status: 503,
    });
    await expect(runFloor(env, probe("steps=upstream"))).rejects.toThrow(/^upstream: /);
    expect(await faultPending(injected.id)).toBe(false);
    await expect(runFloor(env, probe("steps=poll"))).rejects.toThrow(/poll: needs an upstream step/);
  });

  it("queries a real task's object for its own tenant only", async () => {
    const owner = await tenantWithKey();
    const other = await tenantWithKey();
    const taskId = expectSubmitted(await submit(owner.key, "imagine", { prompt: "floor query target" }));
    const balance = await balanceOf(owner.tenantId);
    expect(await runFloor(env, probe(`steps=query&task=${taskId}&tenant=${owner.tenantId}`))).toEqual([
      "query",
    ]);
    await expect(runFloor(env, probe(`steps=query&task=${taskId}&tenant=${other.tenantId}`))).rejects.toThrow(
      /query: no such task/,
    );
    expect(await balanceOf(owner.tenantId)).toBe(balance);
    await driveToEnd(taskId, owner.key);
  });

  it("answers the operator only: without ADMIN_TOKEN it is a 401 and calls no upstream", async () => {
    const url = "http://gateway.test/_debug/floor?steps=upstream";
    const before = await floorSubmits();
    expect((await floorProbe(new Request(url), env)).status).toBe(401);
    const wrong = new Request(url, { headers: { authorization: "Bearer not-the-admin-token" } });
    expect((await floorProbe(wrong, env)).status).toBe(401);
    expect(await floorSubmits()).toBe(before);
    const answer = await floorProbe(new Request(url, { headers: ADMIN }), env);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ steps: ["upstream"] });
    expect(await floorSubmits()).toBe(before + 1);
  });

  it("is not served outside development", async () => {
    const response = await SELF.fetch("https://gateway.test/_debug/floor?steps=d1");
    expect(response.status).toBe(404);
  });
});
