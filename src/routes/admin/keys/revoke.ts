import { createRoute } from "@hono/zod-openapi";
import { revokeKey } from "../../../db/tenants";
import { createRouter, errorResponses } from "../../../http";
import { forgetCachedKeys } from "../../../middleware/auth";
import { KeySchema, keyJson } from "../../../schemas/key";
import { AREAS, json, KeyParams, keyNotFound } from "../../helpers";

export const revokeKeyRoute = createRouter().openapi(
  createRoute({
    method: "delete",
    path: "/admin/tenants/{tenant_id}/keys/{key_id}",
    ...AREAS.adminTenants,
    summary: "revoke a key (final)",
    request: { params: KeyParams },
    responses: { 200: json(KeySchema, "the revoked key"), ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { tenant_id, key_id } = c.req.valid("param");
    const row = await revokeKey(c.env.DB, tenant_id, key_id);
    if (!row) throw keyNotFound(key_id);
    forgetCachedKeys();
    return c.json(keyJson(row), 200);
  },
);
