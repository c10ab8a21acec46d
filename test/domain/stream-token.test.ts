/** Stream tokens: `v1.<base64url JSON claims>.<base64url HMAC-SHA256>`, pure functions. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/domain/errors";
import { base64Url, fromBase64Url } from "../../src/domain/ids";
import {
  MAX_TTL_SECONDS,
  signStreamToken,
  streamTokenSecret,
  verifyStreamToken,
} from "../../src/domain/stream-token";

const SECRET = "unit-test-stream-secret";
const NOW = 1_800_000_000;
const TASK_A = "task_01KV52C0TEJSYZMCG0NCS4YWKK";
const TASK_B = "task_01KV52C0TEJSYZMCG0NCS4YWKM";

/** Signs an arbitrary payload the way the real signer does, to test claim checks behind a valid signature. */
async function signRaw(payload: string, secret = SECRET): Promise<string> {
  const body = base64Url(new TextEncoder().encode(payload));
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`v1.${body}`));
  return `v1.${body}.${base64Url(new Uint8Array(mac))}`;
}

describe("stream tokens", () => {
  it("round-trips the tenant, the task scope and the expiry", async () => {
    const scoped = await signStreamToken(
      { tenantId: "ten_1", taskIds: [TASK_A, TASK_B], exp: NOW + 60 },
      SECRET,
    );
    expect(scoped).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(await verifyStreamToken(scoped, SECRET, NOW)).toEqual({
      ok: true,
      claims: { tenantId: "ten_1", taskIds: [TASK_A, TASK_B], exp: NOW + 60, keyId: null },
    });
    const byKey = await signStreamToken(
      { tenantId: "ten_1", taskIds: null, exp: NOW + 60, keyId: "key_1" },
      SECRET,
    );
    expect(await verifyStreamToken(byKey, SECRET, NOW)).toEqual({
      ok: true,
      claims: { tenantId: "ten_1", taskIds: null, exp: NOW + 60, keyId: "key_1" },
    });
    const wide = await signStreamToken({ tenantId: "ten_1", taskIds: null, exp: NOW + 60 }, SECRET);
    expect(await verifyStreamToken(wide, SECRET, NOW)).toEqual({
      ok: true,
      claims: { tenantId: "ten_1", taskIds: null, exp: NOW + 60, keyId: null },
    });
  });

  it("expires at exp (not one second later)", async () => {
    const token = await signStreamToken({ tenantId: "ten_1", taskIds: null, exp: NOW }, SECRET);
    expect(await verifyStreamToken(token, SECRET, NOW - 1)).toMatchObject({ ok: true });
    expect(await verifyStreamToken(token, SECRET, NOW)).toEqual({ ok: false, reason: "expired" });
    expect(await verifyStreamToken(token, SECRET, NOW + 3600)).toEqual({ ok: false, reason: "expired" });
  });

  it("refuses a token signed with another secret", async () => {
    const token = await signStreamToken({ tenantId: "ten_1", taskIds: null, exp: NOW + 60 }, "other");
    expect(await verifyStreamToken(token, SECRET, NOW)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("refuses a payload changed under a valid signature (another tenant, wider scope, later expiry)", async () => {
    const token = await signStreamToken({ tenantId: "ten_1", taskIds: [TASK_A], exp: NOW + 60 }, SECRET);
    const [, , signature] = token.split(".");
    for (const claims of [
      { t: "ten_2", k: [TASK_A], e: NOW + 60 },
      { t: "ten_1", e: NOW + 60 },
      { t: "ten_1", k: [TASK_A, TASK_B], e: NOW + 60 },
      { t: "ten_1", k: [TASK_A], e: NOW + 999_999 },
    ]) {
      const forged = `v1.${base64Url(new TextEncoder().encode(JSON.stringify(claims)))}.${signature}`;
      expect(await verifyStreamToken(forged, SECRET, NOW), JSON.stringify(claims)).toEqual({
        ok: false,
        reason: "bad_signature",
      });
    }
    // Nor can two genuine tokens be spliced together.
    const other = await signStreamToken({ tenantId: "ten_2", taskIds: null, exp: NOW + 60 }, SECRET);
    const spliced = `v1.${other.split(".")[1]}.${signature}`;
    expect(await verifyStreamToken(spliced, SECRET, NOW)).toMatchObject({ ok: false });
  });

  it("refuses malformed tokens without throwing", async () => {
    const good = await signStreamToken({ tenantId: "ten_1", taskIds: null, exp: NOW + 60 }, SECRET);
    const [, payload, signature] = good.split(".");
    for (const token of [
      "",
      "v1",
      "v1.abc",
      `v2.${payload}.${signature}`,
      `v1.${payload}.${signature}.extra`,
      `v1.${payload}.***`,
      `v1.%%%.${signature}`,
      `v1.${base64Url(new TextEncoder().encode("not json"))}.${signature}`,
    ]) {
      const result = await verifyStreamToken(token, SECRET, NOW);
      expect(result.ok, token).toBe(false);
    }
  });

  it("a validly signed payload with the wrong claim types is malformed", async () => {
    for (const payload of [
      JSON.stringify({ t: 42, e: NOW + 60 }),
      JSON.stringify({ t: "ten_1", e: String(NOW + 60) }),
      JSON.stringify({ t: "ten_1" }),
      JSON.stringify([1, 2]),
    ]) {
      expect(await verifyStreamToken(await signRaw(payload), SECRET, NOW), payload).toEqual({
        ok: false,
        reason: "malformed",
      });
    }
    // The control: the same route with good types verifies.
    expect(
      await verifyStreamToken(await signRaw(JSON.stringify({ t: "ten_1", e: NOW + 60 })), SECRET, NOW),
    ).toMatchObject({ ok: true, claims: { tenantId: "ten_1", taskIds: null } });
  });

  it("any single changed character makes the token invalid (no second spelling of a signature)", async () => {
    const token = await signStreamToken({ tenantId: "ten_1", taskIds: [TASK_A], exp: NOW + 60 }, SECRET);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: token.length - 1 }),
        fc.constantFrom(...alphabet),
        async (position, char) => {
          fc.pre(token[position] !== char);
          const changed = token.slice(0, position) + char + token.slice(position + 1);
          expect((await verifyStreamToken(changed, SECRET, NOW)).ok).toBe(false);
        },
      ),
      { numRuns: 400 },
    );
    // Exhaustively for the last character of each part, where base64 has spare bits.
    const parts = token.split(".");
    for (const index of [1, 2]) {
      for (const char of alphabet.slice(0, 64)) {
        const part = parts[index]!;
        if (part.at(-1) === char) continue;
        const copy = [...parts];
        copy[index] = part.slice(0, -1) + char;
        expect((await verifyStreamToken(copy.join("."), SECRET, NOW)).ok, `part ${index} ends ${char}`).toBe(
          false,
        );
      }
    }
    // Padding or whitespace is a different spelling too.
    expect((await verifyStreamToken(`${token}=`, SECRET, NOW)).ok).toBe(false);
    expect((await verifyStreamToken(token.replace(".", ". "), SECRET, NOW)).ok).toBe(false);
    // (The helpers themselves stay lenient decoders; strictness is the verifier's job.)
    expect(fromBase64Url("QQ")).toEqual(fromBase64Url("QR"));
  });

  it("the signing secret is STREAM_TOKEN_SECRET; only in development is a missing one derived from (never equal to) the admin token", () => {
    const dev = { ENVIRONMENT: "development" };
    expect(streamTokenSecret({ STREAM_TOKEN_SECRET: "s3cret", ADMIN_TOKEN: "admin" })).toBe("s3cret");
    expect(streamTokenSecret({ ...dev, STREAM_TOKEN_SECRET: "s3cret", ADMIN_TOKEN: "admin" })).toBe("s3cret");
    const derived = streamTokenSecret({ ...dev, ADMIN_TOKEN: "admin" });
    expect(derived).not.toBe("admin");
    expect(derived).toContain("admin");
    expect(streamTokenSecret({ ...dev, STREAM_TOKEN_SECRET: "", ADMIN_TOKEN: "admin" })).toBe(derived);
    expect(streamTokenSecret({ ...dev, ADMIN_TOKEN: "other" })).not.toBe(derived);
  });

  it("outside development a missing STREAM_TOKEN_SECRET is a configuration_error, never a fallback", () => {
    for (const env of [
      { ADMIN_TOKEN: "admin" },
      { STREAM_TOKEN_SECRET: "", ADMIN_TOKEN: "admin" },
      { ENVIRONMENT: "production", ADMIN_TOKEN: "admin" },
      { ENVIRONMENT: "Development", ADMIN_TOKEN: "admin" },
    ]) {
      let thrown: unknown;
      try {
        streamTokenSecret(env);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, JSON.stringify(env)).toBeInstanceOf(ApiError);
      expect((thrown as ApiError).status).toBe(500);
      expect((thrown as ApiError).code).toBe("configuration_error");
      expect((thrown as ApiError).message).toContain("STREAM_TOKEN_SECRET");
    }
  });

  it("allows a day at most", () => {
    expect(MAX_TTL_SECONDS).toBe(86_400);
  });
});
