import { createRoute } from "@hono/zod-openapi";
import { isRefused } from "../../../db/constraints";
import { updateKey } from "../../../db/tenants";
import { ApiError } from "../../../domain/errors";
import { createRouter, errorResponses } from "../../../http";
import { forgetCachedKeys } from "../../../middleware/auth";
import { KeyPatch, KeySchema, keyJson } from "../../../schemas/key";
import { AREAS, body, inflightAboveNewCap, json, KeyParams, keyNotFound } from "../../helpers";

export const updateKeyRoute = createRouter().openapi(
  createRoute({
    method: "patch",
    path: "/admin/tenants/{tenant_id}/keys/{key_id}",
    ...AREAS.adminTenants,
    summary: "change a key: disable/enable, expiry, scopes, allowed actions, limits and caps",
    request: { params: KeyParams, body: body(KeyPatch) },
    responses: { 200: json(KeySchema, "the key"), ...errorResponses(400, 401, 404, 409) },
  }),
  async (c) => {
    const { tenant_id, key_id } = c.req.valid("param");
    const row = await updateKey(c.env.DB, tenant_id, key_id, c.req.valid("json"));
    if (!row) throw keyNotFound(key_id);
    if (isRefused(row)) throw inflightAboveNewCap();
    if (row.status === "revoked")
      throw new ApiError("revoked_key_is_final", "a revoked key cannot be changed");
    forgetCachedKeys();
    return c.json(keyJson(row), 200);
  },
);
