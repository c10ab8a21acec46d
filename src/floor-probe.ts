import { newTaskId } from "./domain/ids";
import { configFrom, type Env } from "./env";
import { ADMIN_TOKEN_HINT, isAdminToken } from "./middleware/auth";
import { UpstreamClient } from "./upstream/client";

/**
 * Development only, for the benchmarks: the platform's floor under a submit and a query on
 * the stack being measured, with none of the product around it (no routing, auth, logging,
 * pricing or validation). A submit cannot do less than one D1 round trip (the charge), one
 * call into its task's new object (the durable record that owns the charge) and the
 * upstream's answer, in that order; a query of a running task cannot do less than one call
 * into the task's object. Set beside `/health` in the same run, the floor tells which goals
 * any gateway with this design could reach on this stack and which part of a gap is ours.
 *
 * Every step is the lightest of its kind, so the floor is a lower bound: the D1 step reads
 * `SELECT 1` where an admission writes, and the object step reads a blank object where a
 * start writes the record (creating the object's SQLite file).
 */
export const FLOOR_STEPS = ["d1", "object", "upstream", "poll", "query"] as const;
export type FloorStep = (typeof FLOOR_STEPS)[number];

/** A probe's input: the steps, in order, and for `query` the task and its tenant. */
export interface FloorRequest {
  steps: FloorStep[];
  taskId: string | null;
  tenantId: string | null;
}

export class FloorRefusal extends Error {}

export function floorRequestOf(url: URL): FloorRequest {
  // `steps=` with none is the bare probe: the runtime's own cost of a request that does nothing.
  const given = url.searchParams.get("steps");
  const steps = (given ?? "").split(",").filter(Boolean);
  const unknown = steps.find((step) => !(FLOOR_STEPS as readonly string[]).includes(step));
  if (given === null || unknown !== undefined) {
    throw new FloorRefusal(`steps: none or more of ${FLOOR_STEPS.join(", ")}`);
  }
  const request = {
    steps: steps as FloorStep[],
    taskId: url.searchParams.get("task"),
    tenantId: url.searchParams.get("tenant"),
  };
  if (request.steps.includes("query") && (!request.taskId || !request.tenantId)) {
    throw new FloorRefusal("query: needs task and tenant");
  }
  return request;
}

/** Runs the steps in series; throws FloorRefusal when one fails, so the probe never passes for less. */
export async function runFloor(env: Env, request: FloorRequest): Promise<FloorStep[]> {
  const config = configFrom(env);
  const upstream = new UpstreamClient({
    baseUrl: config.upstreamBaseUrl,
    apiKey: config.upstreamApiKey,
    timeoutMs: config.upstreamTimeoutMs,
  });
  let upstreamTaskId: string | null = null;
  const run: Record<FloorStep, () => Promise<void>> = {
    d1: async () => {
      await env.DB.batch([env.DB.prepare("SELECT 1")]);
    },
    object: async () => {
      await env.TASKS.get(env.TASKS.idFromName(newTaskId())).custody();
    },
    upstream: async () => {
      const answer = await upstream.submit("imagine", { prompt: "floor probe" });
      if (!answer.ok) throw new FloorRefusal(`upstream: ${answer.failure.message}`);
      upstreamTaskId = answer.value.taskId;
    },
    poll: async () => {
      if (!upstreamTaskId) throw new FloorRefusal("poll: needs an upstream step before it");
      const answer = await upstream.query(upstreamTaskId);
      if (!answer.ok) throw new FloorRefusal(`poll: ${answer.failure.message}`);
    },
    query: async () => {
      const stub = env.TASKS.get(env.TASKS.idFromName(request.taskId!));
      if (!(await stub.query(request.tenantId!, "task"))) throw new FloorRefusal("query: no such task");
    },
  };
  for (const step of request.steps) await run[step]();
  return request.steps;
}

/**
 * GET /_debug/floor?steps=[d1,object,upstream…][&task=…&tenant=…]: 200 with the steps run, else
 * 400/502. Its upstream step spends the upstream's money and its query step reads any tenant's
 * task, so it answers the operator only (ADMIN_TOKEN), development or not: else 401.
 */
export async function floorProbe(incoming: Request, env: Env): Promise<Response> {
  if (!isAdminToken(incoming.headers.get("authorization") ?? undefined, env.ADMIN_TOKEN)) {
    return Response.json({ error: ADMIN_TOKEN_HINT }, { status: 401 });
  }
  const url = new URL(incoming.url);
  let request: FloorRequest;
  try {
    request = floorRequestOf(url);
  } catch (error) {
    if (error instanceof FloorRefusal) return Response.json({ error: error.message }, { status: 400 });
    throw error;
  }
  try {
    return Response.json({ steps: await runFloor(env, request) });
  } catch (error) {
    if (error instanceof FloorRefusal) return Response.json({ error: error.message }, { status: 502 });
    throw error;
  }
}
