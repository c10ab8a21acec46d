/**
 * The console's knowledge of the API (its action list, the key scopes and the typedefs of the
 * answers it reads) is generated from the OpenAPI document the Worker serves, by
 * scripts/build-assets.mjs into public/console/generated/api.js. These tests fail when the
 * console's copy drifts from the API's, or when a console script keeps a list of its own.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { actionsOf, renderConsoleApi, scopesOf, typeOf } from "../../scripts/console-api.mjs";
import { ACTIONS } from "../../src/domain/actions";
import { SCOPES } from "../../src/domain/scopes";
import { CONSOLE_SCRIPTS } from "./console-files";

const BASE = "http://gateway.test";
const assets = () => (env as unknown as { ASSETS: Fetcher }).ASSETS;
const asset = async (path: string) => {
  const response = await assets().fetch(`${BASE}${path}`);
  expect(response.status, path).toBe(200);
  return response.text();
};
const servedDocument = async () => (await SELF.fetch(`${BASE}/openapi.json`)).json<any>();

describe("the console's generated API module", () => {
  it("is exactly what the served /openapi.json renders", async () => {
    const generated = await asset("/console/generated/api.js");
    expect(generated).toBe(renderConsoleApi(await servedDocument()));
  });

  it("lists the API's actions and key scopes, in the API's order", async () => {
    const document = await servedDocument();
    expect(actionsOf(document)).toEqual([...ACTIONS]);
    expect(scopesOf(document)).toEqual([...SCOPES]);
    const generated = await asset("/console/generated/api.js");
    expect(generated).toContain(`export const ACTIONS = /** @type {const} */ (${JSON.stringify(ACTIONS)});`);
    expect(generated).toContain(
      `export const SCOPE_NAMES = /** @type {const} */ (${JSON.stringify(SCOPES)});`,
    );
  });

  it("has a typedef for every schema and the answer of every operation the console reads", async () => {
    const document = await servedDocument();
    const generated = await asset("/console/generated/api.js");
    for (const name of Object.keys(document.components.schemas)) {
      expect(generated, name).toMatch(new RegExp(`@typedef \\{.*\\} ${name} \\*/`));
    }
    for (const operation of [
      "GET /admin/tasks",
      "GET /admin/tenants",
      "GET /admin/ledger",
      "GET /v1/midjourney/{task_id}",
    ]) {
      expect(generated).toContain(`"${operation}": `);
    }
    expect(generated).toContain(
      '"GET /admin/tasks": { data: Array<AdminTask>, next_cursor: string | null },',
    );
    expect(generated).toMatch(/live: AdminTaskLive \| null/);
  });

  it("the console keeps no list of its own: its scripts take actions and scopes from the generated module", async () => {
    for (const file of CONSOLE_SCRIPTS) {
      const script = await asset(`/console/${file}`);
      // Any two actions as string literals side by side would be a copied list.
      expect(script, file).not.toMatch(/"high-variation",\s*"low-variation"/);
      expect(script, file).not.toMatch(/"remix-strong",\s*"remix-subtle"/);
      expect(script, file).not.toMatch(/\[\s*"generate",\s*"read"/);
    }
    const pickers = await asset("/console/pickers.js");
    expect(pickers).toContain('import { ACTIONS, SCOPE_NAMES } from "./generated/api.js";');
  });
});

describe("typeOf (JSON Schema → the JSDoc type the console checks against)", () => {
  it("maps refs, enums, nullables, arrays, objects and maps", () => {
    expect(typeOf({ $ref: "#/components/schemas/Tenant" })).toBe("Tenant");
    expect(typeOf({ type: "string", enum: ["a", "b"] })).toBe('"a" | "b"');
    expect(typeOf({ type: ["string", "null"] })).toBe("string | null");
    expect(typeOf({ anyOf: [{ $ref: "#/components/schemas/X" }, { type: "null" }] })).toBe("X | null");
    expect(typeOf({ type: "integer", nullable: true })).toBe("number | null");
    expect(typeOf({ type: "array", items: { type: "boolean" } })).toBe("Array<boolean>");
    expect(
      typeOf({
        type: "object",
        properties: { id: { type: "string" }, "x-y": { type: "number" } },
        required: ["id"],
      }),
    ).toBe('{ id: string, "x-y"?: number }');
    expect(typeOf({ type: "object", additionalProperties: { type: "string" } })).toBe(
      "Record<string, string>",
    );
    expect(typeOf({ allOf: [{ $ref: "#/components/schemas/A" }, { type: "object", properties: {} }] })).toBe(
      "(A) & ({})",
    );
    expect(typeOf({ const: 200 })).toBe("200");
    expect(typeOf({})).toBe("unknown");
  });
});
