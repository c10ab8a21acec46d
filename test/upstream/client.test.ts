/**
 * Unit tests of the upstream client (src/upstream/client.ts) with a fake fetch: tolerant
 * error parsing, task parsing, failure classification, the mapping to our error shape,
 * and the one rule above all: the upstream key never leaves the client.
 */
import { describe, expect, it } from "vitest";
import {
  apiErrorForUpstream,
  parseTask,
  UpstreamClient,
  type UpstreamFailure,
  upstreamErrorMessage,
} from "../../src/upstream/client";

const KEY = "sk-upstream-SECRET-0123456789";
const BASE = "https://upstream.example";

interface Seen {
  url: string;
  init: RequestInit;
}

function clientWith(answer: (seen: Seen) => Response | Promise<Response>, timeoutMs = 1_000) {
  const seen: Seen[] = [];
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const call = { url: String(input), init: init ?? {} };
    seen.push(call);
    return answer(call);
  }) as typeof fetch;
  return { client: new UpstreamClient({ baseUrl: BASE, apiKey: KEY, timeoutMs, fetcher }), seen };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

async function submitFailure(response: () => Response | Promise<Response>, timeoutMs?: number) {
  const { client } = clientWith(response, timeoutMs);
  const result = await client.submit("imagine", { prompt: "x" });
  expect(result.ok).toBe(false);
  return (result as { ok: false; failure: UpstreamFailure }).failure;
}

describe("upstreamErrorMessage reads errors tolerantly", () => {
  it.each([
    [
      { error: { code: 4, message: "task_id is required", type: "invalid_request_error" } },
      "task_id is required",
    ],
    [{ error: { code: "4", message: "code as a string" } }, "code as a string"],
    [{ message: "top-level message" }, "top-level message"],
    [{ description: "a description" }, "a description"],
    [{ detail: "a detail" }, "a detail"],
    [{ error: "a plain string error" }, "a plain string error"],
    [{ error: { message: "" }, message: "fallback to top level" }, "fallback to top level"],
    [{ error: { code: 9 }, description: "Service rejected" }, "Service rejected"],
    [{ error: "", message: "empty string error is skipped" }, "empty string error is skipped"],
    [{ error: { message: "nested wins" }, message: "top loses" }, "nested wins"],
  ])("%j → %s", (body, message) => {
    expect(upstreamErrorMessage(body)).toBe(message);
  });

  it.each([
    [null],
    [undefined],
    ["<html>502</html>"],
    [42],
    [[]],
    [{}],
    [{ error: { code: 4 } }],
    [{ message: 7 }],
    [{ error: null }],
  ])("%j → null", (body) => {
    expect(upstreamErrorMessage(body)).toBeNull();
  });
});

describe("parseTask", () => {
  it.each([
    ["0%", 0],
    ["5%", 5],
    ["45%", 45],
    ["100%", 100],
    [" 7%", 7],
    ["45.5%", 45],
    [63, 63],
    ["63", 63],
    ["abc", 0],
    [null, 0],
    [undefined, 0],
  ])("progress %j → %d", (progress, expected) => {
    const task = parseTask({ id: "task_X", status: "IN_PROGRESS", progress });
    expect(task?.progress).toBe(expected);
  });

  it("normalises the status, keeps the raw object, reads fail_reason", () => {
    const raw = {
      id: "task_A",
      status: "failure",
      progress: "100%",
      fail_reason: "banned prompt",
      image_urls: [],
      extra: { kept: true },
    };
    expect(parseTask(raw)).toEqual({
      id: "task_A",
      status: "FAILURE",
      progress: 100,
      failReason: "banned prompt",
      costMicros: null,
      raw,
    });
    expect(parseTask({ id: "t", status: "SUCCESS", cost: 0.05504 })?.costMicros).toBe(55_040);
    expect(parseTask({ id: "t", status: "SUCCESS", cost: "0.1" })?.costMicros).toBe(100_000);
    expect(parseTask({ id: "t", status: "SUCCESS", cost: -1 })?.costMicros).toBeNull();
    expect(parseTask({ id: "t", status: "in_progress" })?.status).toBe("IN_PROGRESS");
    expect(parseTask({ id: "t", status: "SUCCESS", fail_reason: "" })?.failReason).toBeNull();
    expect(parseTask({ id: "t", status: "SUCCESS", fail_reason: null })?.failReason).toBeNull();
    expect(parseTask({ status: "MODAL" })?.id).toBe("");
  });

  it.each([[null], ["SUCCESS"], [{}], [{ status: "DONE" }], [{ status: "" }], [{ status: 3 }]])(
    "%j is not a task",
    (value) => {
      expect(parseTask(value)).toBeNull();
    },
  );
});

describe("UpstreamClient requests", () => {
  it("sends the key as a bearer token, JSON body, to base + path", async () => {
    const { client, seen } = clientWith(() =>
      json(200, { code: 200, data: [{ status: "submitted", task_id: "u1" }] }),
    );
    const result = await client.submit("high-variation", { task_id: "p", index: 2 });
    expect(result).toEqual({
      ok: true,
      value: { taskId: "u1", status: "submitted", tasks: [{ taskId: "u1", status: "submitted" }] },
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe(`${BASE}/v1/midjourney/generations/high-variation`);
    expect(seen[0]!.init.method).toBe("POST");
    const headers = new Headers(seen[0]!.init.headers);
    expect(headers.get("authorization")).toBe(`Bearer ${KEY}`);
    expect(headers.get("content-type")).toBe("application/json");
    expect(JSON.parse(String(seen[0]!.init.body))).toEqual({ task_id: "p", index: 2 });
    expect(seen[0]!.init.signal).toBeInstanceOf(AbortSignal);
  });

  it("queries GET base/v1/midjourney/{id} with the id encoded", async () => {
    const { client, seen } = clientWith(() => json(200, { id: "a/b", status: "SUCCESS", progress: "100%" }));
    const result = await client.query("a/b");
    expect(result.ok).toBe(true);
    expect(seen[0]!.url).toBe(`${BASE}/v1/midjourney/a%2Fb`);
    expect(seen[0]!.init.method).toBe("GET");
    expect(seen[0]!.init.body).toBeUndefined();
  });

  it.each([
    [
      { code: 200, data: [{ status: "submitted", task_id: "u1" }] },
      { taskId: "u1", status: "submitted", tasks: [{ taskId: "u1", status: "submitted" }] },
    ],
    [
      { code: 200, data: [{ status: "modal", task_id: "u2" }] },
      { taskId: "u2", status: "modal", tasks: [{ taskId: "u2", status: "modal" }] },
    ],
    [
      { code: 200, data: [{ status: "MODAL", task_id: "u3" }] },
      { taskId: "u3", status: "modal", tasks: [{ taskId: "u3", status: "modal" }] },
    ],
    [
      { code: 200, data: { status: "submitted", task_id: "u4" } },
      { taskId: "u4", status: "submitted", tasks: [{ taskId: "u4", status: "submitted" }] },
    ],
    [
      { code: 200, data: [{ id: "u5" }] },
      { taskId: "u5", status: "submitted", tasks: [{ taskId: "u5", status: "submitted" }] },
    ],
    [
      {
        code: 200,
        data: [
          { status: "submitted", task_id: "r1" },
          { status: "submitted", task_id: "r2" },
        ],
      },
      {
        taskId: "r1",
        status: "submitted",
        tasks: [
          { taskId: "r1", status: "submitted" },
          { taskId: "r2", status: "submitted" },
        ],
      },
    ],
  ])("submit answer %j is understood", async (body, value) => {
    const { client } = clientWith(() => json(200, body));
    expect(await client.submit("imagine", { prompt: "x" })).toEqual({ ok: true, value });
  });

  it.each([
    [{ code: 200, data: [] }],
    [{ code: 200 }],
    [{ code: 200, data: [{ status: "submitted" }] }],
    [[]],
  ])("a 200 submit answer without a task id %j is a bad_response", async (body) => {
    const failure = await submitFailure(() => json(200, body));
    expect(failure.kind).toBe("bad_response");
  });

  it("a 200 query answer without a known status is a bad_response", async () => {
    const { client } = clientWith(() => json(200, { id: "x", status: "WEIRD" }));
    const result = await client.query("x");
    expect(result.ok).toBe(false);
    expect((result as any).failure.kind).toBe("bad_response");
  });
});

describe("UpstreamClient failures", () => {
  it("4xx with a readable message → rejected, with the upstream's message and status", async () => {
    const failure = await submitFailure(() =>
      json(400, { error: { code: 4, message: "This action requires an upscaled task", type: "x" } }),
    );
    expect(failure).toEqual({
      kind: "rejected",
      status: 400,
      message: "This action requires an upscaled task",
    });
    expect(await submitFailure(() => json(422, { message: "bad" }))).toEqual({
      kind: "rejected",
      status: 422,
      message: "bad",
    });
  });

  it("4xx without a readable error → bad_response", async () => {
    const failure = await submitFailure(() => new Response("<html>400</html>", { status: 400 }));
    expect(failure.kind).toBe("bad_response");
    expect((failure as any).status).toBe(400);
  });

  it("401 and 403 → auth; 404 → not_found", async () => {
    expect((await submitFailure(() => json(401, { error: { message: "invalid API key" } }))).kind).toBe(
      "auth",
    );
    expect((await submitFailure(() => json(403, { error: { message: "not yours" } }))).kind).toBe("auth");
    expect(
      await submitFailure(() => json(404, { error: { code: 3, message: "task u9 not found" } })),
    ).toEqual({
      kind: "not_found",
      message: "task u9 not found",
    });
  });

  it.each([
    ["7", 7],
    ["120", 120],
    [undefined, null],
    ["0", null],
    ["soon", null],
    ["Wed, 21 Oct 2099 07:28:00 GMT", null],
  ])("429 with Retry-After %j → rate_limited, retryAfterSeconds %j", async (retryAfter, expected) => {
    const headers: Record<string, string> = retryAfter === undefined ? {} : { "retry-after": retryAfter };
    const failure = await submitFailure(() => json(429, { error: { message: "slow down" } }, headers));
    expect(failure).toEqual({ kind: "rate_limited", retryAfterSeconds: expected, message: "slow down" });
  });

  it("5xx JSON → server_error with its message; 5xx HTML or empty → bad_response", async () => {
    expect(await submitFailure(() => json(502, { error: { code: 9, message: "Service rejected" } }))).toEqual(
      {
        kind: "server_error",
        status: 502,
        message: "Service rejected",
      },
    );
    expect(await submitFailure(() => json(503, { nothing: "here" }))).toEqual({
      kind: "server_error",
      status: 503,
      message: "upstream answered HTTP 503",
    });
    const html = await submitFailure(
      () =>
        new Response("<!DOCTYPE html><h1>502 Bad Gateway</h1>", {
          status: 502,
          headers: { "content-type": "text/html" },
        }),
    );
    expect(html.kind).toBe("bad_response");
    expect((await submitFailure(() => new Response("", { status: 500 }))).kind).toBe("bad_response");
  });

  it("200 with garbage or a truncated body → bad_response", async () => {
    for (const text of [
      "OK\u0000<<not json>>",
      '{"code":200,"data":[{"status":"submitted","task_id":"task_01',
      "",
    ]) {
      const failure = await submitFailure(() => new Response(text, { status: 200 }));
      expect(failure.kind, text).toBe("bad_response");
    }
  });

  it("no answer within timeoutMs → timeout (the request is aborted)", async () => {
    let aborted = false;
    const started = Date.now();
    // A fetch that never answers, but honours its abort signal like the real one.
    const fetcher = ((_input: RequestInfo | URL, init?: RequestInit) =>
      new Promise<Response>((_, reject) => {
        init?.signal?.addEventListener("abort", () => {
          aborted = true;
          reject(init.signal!.reason);
        });
      })) as typeof fetch;
    const client = new UpstreamClient({ baseUrl: BASE, apiKey: KEY, timeoutMs: 50, fetcher });
    const result = await client.submit("imagine", { prompt: "x" });
    expect(result).toEqual({
      ok: false,
      failure: { kind: "timeout", message: "upstream did not answer within 50 ms" },
    });
    expect(aborted).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("a body that stops mid-way → timeout; a fetch that throws → network", async () => {
    const broken = await submitFailure(
      () =>
        new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode('{"code":200,'));
              controller.error(new Error("connection reset"));
            },
          }),
          { status: 200 },
        ),
    );
    expect(broken.kind).toBe("timeout");
    const network = await submitFailure(() => {
      throw new TypeError("fetch failed: ECONNREFUSED");
    });
    expect(network).toEqual({ kind: "network", message: "upstream could not be reached" });
  });
});

describe("apiErrorForUpstream: every failure in our one error shape", () => {
  const cases: Array<[UpstreamFailure, number, string]> = [
    [{ kind: "rejected", status: 400, message: "task x is not in SUCCESS state" }, 400, "upstream_rejected"],
    [{ kind: "rejected", status: 409, message: "conflict" }, 400, "upstream_rejected"],
    [{ kind: "rejected", status: 422, message: "unprocessable" }, 422, "upstream_rejected"],
    [{ kind: "not_found", message: "task x not found" }, 404, "task_not_found"],
    [{ kind: "rate_limited", retryAfterSeconds: 7, message: "slow" }, 429, "upstream_rate_limited"],
    [{ kind: "auth", status: 401, message: "invalid API key" }, 502, "upstream_error"],
    [{ kind: "server_error", status: 503, message: "down" }, 502, "upstream_error"],
    [{ kind: "bad_response", status: 200, message: "not JSON" }, 502, "upstream_bad_response"],
    [{ kind: "timeout", message: "no answer" }, 504, "upstream_timeout"],
    [{ kind: "network", message: "unreachable" }, 502, "upstream_error"],
  ];

  it.each(cases)("%j → %d %s", (failure, status, code) => {
    const error = apiErrorForUpstream(failure);
    expect(error.status).toBe(status);
    expect(error.code).toBe(code);
    const body = error.toBody("req_X");
    expect(Object.keys(body.error).sort()).toEqual(["code", "message", "request_id", "type"]);
    expect(body.error.type.length).toBeGreaterThan(0);
    if (failure.kind === "rejected" || failure.kind === "not_found")
      expect(error.message).toBe(failure.message);
  });

  it("429 carries Retry-After (the upstream's, else 5)", () => {
    expect(
      apiErrorForUpstream({ kind: "rate_limited", retryAfterSeconds: 7, message: "" }).options.headers,
    ).toEqual({
      "Retry-After": "7",
    });
    expect(
      apiErrorForUpstream({ kind: "rate_limited", retryAfterSeconds: null, message: "" }).options.headers,
    ).toEqual({ "Retry-After": "5" });
  });

  it("an auth failure does not tell the tenant the upstream's reason", () => {
    const error = apiErrorForUpstream({ kind: "auth", status: 401, message: `invalid API key ${KEY}` });
    expect(error.message).not.toContain(KEY);
    expect(error.message).not.toMatch(/invalid API key/);
  });
});

describe("the upstream key never leaves the client", () => {
  const echoes: Array<[string, () => Response]> = [
    ["400 error.message", () => json(400, { error: { message: `bad request for key ${KEY}` } })],
    ["422 message", () => json(422, { message: `Bearer ${KEY} cannot do that` })],
    ["404", () => json(404, { error: { message: `no task for ${KEY}` } })],
    ["429", () => json(429, { error: { message: `key ${KEY} is rate limited` } }, { "retry-after": "3" })],
    ["500 description", () => json(500, { description: `internal: ${KEY}` })],
    ["502 string error", () => json(502, { error: `proxy saw ${KEY}` })],
    ["401", () => json(401, { error: { message: `invalid API key ${KEY}` } })],
  ];

  it.each(echoes)(
    "an upstream %s that echoes the key is redacted before it reaches a tenant",
    async (_, answer) => {
      const failure = await submitFailure(answer);
      expect(JSON.stringify(failure)).not.toContain(KEY);
      const body = apiErrorForUpstream(failure).toBody("req_X");
      expect(JSON.stringify(body)).not.toContain(KEY);
      expect(JSON.stringify(apiErrorForUpstream(failure).options)).not.toContain(KEY);
    },
  );

  it("query failures are redacted too", async () => {
    const { client } = clientWith(() => json(400, { error: { message: `task for ${KEY} broken` } }));
    const result = await client.query("t");
    expect(JSON.stringify(result)).not.toContain(KEY);
  });
});
