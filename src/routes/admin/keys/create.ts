import { createRoute } from "@hono/zod-openapi";
import { createKey } from "../../../db/tenants";
import { createRouter, errorResponses } from "../../../http";
import { KeyCreate, KeyWithSecretSchema, keyJson } from "../../../schemas/key";
import { AREAS, body, json, TenantParams, tenantOr404 } from "../../helpers";

export const createKeyRoute = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/admin/tenants/{tenant_id}/keys",
    ...AREAS.adminTenants,
    summary: "issue a sub-key (the secret is shown once)",
    request: { params: TenantParams, body: body(KeyCreate) },
    responses: {
      201: json(KeyWithSecretSchema, "the key, with its secret"),
      ...errorResponses(400, 401, 404),
    },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    const { row, secret } = await createKey(c.env.DB, tenant_id, c.req.valid("json"));
    return c.json({ ...keyJson(row), key: secret }, 201);
  },
);
