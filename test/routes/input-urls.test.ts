/**
 * Outbound safety of image inputs: image_urls, mask_url, end_url and the URLs inside
 * cref/sref/dref must be public http(s) URLs. A refused one is a 400 naming the field, and
 * nothing is written (no task, no charge, no ledger row) and nothing is forwarded.
 * (Tests do not run in development; inputs refuse loopback in every environment anyway.)
 */
import { describe, expect, it } from "vitest";
import { driveToEnd, submit, tenantWithKey } from "../helpers";
import {
  BASE_URL,
  expectError,
  expectNothingWritten,
  expectSubmitted,
  fault,
  faultPending,
  footprint,
  marker,
} from "./route-helpers";

const GOOD_ID = "task_01KV52C0TEJSYZMCG0NCS4YWKK";

const BAD_URLS = [
  "http://127.0.0.1/a.png",
  "http://localhost:8787/a.png",
  "http://img.localhost/a.png",
  "http://[::1]/a.png",
  "http://10.0.0.7/a.png",
  "http://172.20.1.1/a.png",
  "http://192.168.0.1/a.png",
  "http://[fd00::1]/a.png",
  "http://169.254.169.254/latest/meta-data/",
  "http://[fe80::1]/a.png",
  "http://100.64.1.1/a.png",
  "http://0.0.0.0/a.png",
  "http://224.0.0.251/a.png",
  "http://255.255.255.255/a.png",
  "http://[::ffff:127.0.0.1]/a.png",
  "http://2130706433/a.png",
  "http://0x7f.1/a.png",
  "http://0177.0.0.1/a.png",
  "http://metadata.google.internal/computeMetadata/v1/",
  "http://intranet/a.png",
  "http://user:pass@example.com/a.png",
  "ftp://example.com/a.png",
  "file:///etc/passwd",
];

/** [label, action, body with BAD where the bad URL goes, field the error must name] */
const FIELDS: [string, string, (bad: string) => Record<string, unknown>, string][] = [
  ["imagine image_urls", "imagine", (bad) => ({ prompt: "x", image_urls: [BASE_URL, bad] }), "image_urls.1"],
  ["edits image_urls", "edits", (bad) => ({ prompt: "x", image_urls: [bad] }), "image_urls.0"],
  ["blend image_urls", "blend", (bad) => ({ image_urls: [BASE_URL, bad] }), "image_urls.1"],
  ["describe image_urls", "describe", (bad) => ({ image_urls: [bad] }), "image_urls.0"],
  ["video image_urls", "video", (bad) => ({ image_urls: [bad] }), "image_urls.0"],
  ["video end_url", "video", (bad) => ({ image_urls: [BASE_URL], end_url: bad }), "end_url"],
  ["modal mask_url", "modal", (bad) => ({ task_id: GOOD_ID, mask_url: bad }), "mask_url"],
  ["imagine cref", "imagine", (bad) => ({ prompt: "x", cref: bad }), "cref"],
  ["imagine sref (among codes)", "imagine", (bad) => ({ prompt: "x", sref: `1234 ${bad}::2 5678` }), "sref"],
  ["imagine dref", "imagine", (bad) => ({ prompt: "x", dref: `${BASE_URL} ${bad}` }), "dref"],
  ["edits sref", "edits", (bad) => ({ prompt: "x", image_urls: [BASE_URL], sref: bad }), "sref"],
];

describe("bad input URLs → 400 naming the field, nothing written, nothing forwarded", () => {
  it.each(FIELDS)("%s", async (_label, action, body, field) => {
    const tenant = await tenantWithKey(10_000_000);
    const prompt = marker("never-forwarded");
    const sentinel = await fault({ type: "status", status: 418, on: "submit", prompt_contains: prompt });
    const before = await footprint(tenant);
    for (const bad of BAD_URLS) {
      const request = body(bad);
      if (typeof request.prompt === "string") request.prompt = prompt;
      const res = await submit(tenant.key, action, request);
      const error = expectError(res, 400, "invalid_request");
      expect(error.field, `${bad}: ${error.message}`).toBe(field);
      expect(error.message.startsWith(`${field}: `), error.message).toBe(true);
    }
    await expectNothingWritten(tenant, before);
    expect(await faultPending(sentinel.id)).toBe(true);
  });

  it("names the problem: private host, credentials, scheme", async () => {
    const tenant = await tenantWithKey(10_000_000);
    const cases: [unknown, RegExp][] = [
      [["http://169.254.169.254/"], /^image_urls\.0: must not point at a private, loopback or link-local/],
      [["http://u:p@example.com/a.png"], /^image_urls\.0: must not contain credentials/],
      [["gopher://example.com/a.png"], /^image_urls\.0: must be an http\(s\) URL or a base64 data URI/],
    ];
    for (const [image_urls, message] of cases) {
      const error = expectError(await submit(tenant.key, "describe", { image_urls }), 400, "invalid_request");
      expect(error.message).toMatch(message);
    }
    const sref = expectError(
      await submit(tenant.key, "imagine", { prompt: "x", sref: "1234 http://10.1.2.3/s.png" }),
      400,
      "invalid_request",
    );
    expect(sref.message).toMatch(/^sref: 'http:\/\/10\.1\.2\.3\/s\.png' must not point at a private/);
  });

  it("public URLs, data URIs and style codes still go through", async () => {
    const tenant = await tenantWithKey(10_000_000);
    const imagine = expectSubmitted(
      await submit(tenant.key, "imagine", {
        prompt: marker("public-inputs"),
        image_urls: ["http://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="],
        cref: "https://example.com/c.png",
        sref: "1234 https://example.com/s.png::2 random",
        dref: "987654",
      }),
    );
    const video = expectSubmitted(
      await submit(tenant.key, "video", { image_urls: [BASE_URL], end_url: BASE_URL }),
    );
    for (const id of [imagine, video]) expect((await driveToEnd(id, tenant.key)).status).toBe("SUCCESS");
  });
});
