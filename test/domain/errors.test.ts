/**
 * One table maps every error code to its HTTP answer (src/domain/error-codes.ts); an
 * ApiError carries only a code, and the OpenAPI document lists every code a client may see.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  ERROR_CODES,
  type ErrorKind,
  kindOfWire,
  WIRE_CODES,
  wireCodeOf,
} from "../../src/domain/error-codes";
import { ApiError } from "../../src/domain/errors";

const KINDS = Object.keys(ERROR_CODES) as ErrorKind[];

describe("the error-code table", () => {
  it("answers each (status, code) pair a client can see with exactly one entry", () => {
    const pairs = KINDS.map((kind) => `${ERROR_CODES[kind].status} ${wireCodeOf(kind)}`);
    expect(new Set(pairs).size).toBe(pairs.length);
  });

  it("a shared wire code always names an entry of its own (the base meaning)", () => {
    for (const kind of KINDS) expect(KINDS).toContain(wireCodeOf(kind));
  });

  it("keeps the wire contract: codes answered under two statuses, and their types", () => {
    const answer = (kind: ErrorKind) => {
      const error = new ApiError(kind, "m");
      return [error.status, error.toBody("req").error.code, error.toBody("req").error.type];
    };
    expect(answer("insufficient_balance")).toEqual([402, "insufficient_balance", "billing_error"]);
    expect(answer("adjustment_exceeds_balance")).toEqual([409, "insufficient_balance", "conflict_error"]);
    expect(answer("invalid_request")).toEqual([400, "invalid_request", "invalid_request_error"]);
    expect(answer("max_inflight_below_current")).toEqual([409, "invalid_request", "conflict_error"]);
    expect(answer("key_revoked")).toEqual([401, "key_revoked", "authentication_error"]);
    expect(answer("revoked_key_is_final")).toEqual([409, "key_revoked", "conflict_error"]);
    expect(answer("upstream_rejected")).toEqual([400, "upstream_rejected", "invalid_request_error"]);
    expect(answer("upstream_unprocessable")).toEqual([422, "upstream_rejected", "invalid_request_error"]);
    expect(answer("idempotency_in_progress")).toEqual([409, "idempotency_in_progress", "idempotency_error"]);
    expect(answer("idempotency_key_reused")).toEqual([422, "idempotency_key_reused", "idempotency_error"]);
  });

  it("an error rebuilt from its wire form is the same error", () => {
    for (const kind of KINDS) {
      const error = new ApiError(kind, "m", { field: "f" });
      const rebuilt = ApiError.fromWire(error.status, error.code, error.message, error.options);
      expect(rebuilt.kind).toBe(kind);
      expect(rebuilt.toBody("r")).toEqual(error.toBody("r"));
      expect(kindOfWire(error.status, error.code)).toBe(kind);
    }
  });

  it("the body has the one shape, with the field only when named", () => {
    expect(new ApiError("not_found", "gone").toBody("req_1")).toEqual({
      error: { code: "not_found", message: "gone", type: "not_found_error", request_id: "req_1" },
    });
    expect(new ApiError("invalid_request", "x: bad", { field: "x" }).toBody("r").error.field).toBe("x");
  });
});

describe("the OpenAPI error schema", () => {
  it("lists every wire code as an enum, with its status and meaning", async () => {
    const doc = (await (await SELF.fetch("http://gateway.test/openapi.json")).json()) as any;
    const code = doc.components.schemas.Error.properties.error.properties.code;
    expect(code.enum).toEqual(WIRE_CODES);
    expect([...code.enum].sort()).toEqual([...new Set(KINDS.map(wireCodeOf))].sort());
    for (const kind of KINDS) expect(code.description).toContain(ERROR_CODES[kind].description);
  });
});
