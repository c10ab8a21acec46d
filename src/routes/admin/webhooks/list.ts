import { createRoute } from "@hono/zod-openapi";
import { listEndpoints } from "../../../db/webhooks";
import { createRouter, errorResponses } from "../../../http";
import { endpointJson } from "../../../schemas/webhook";
import { AREAS, TenantParams, tenantOr404 } from "../../helpers";
import { endpointsListed } from "../../webhook-endpoints";

export const listTenantWebhooksRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/tenants/{tenant_id}/webhooks",
    ...AREAS.adminWebhooks,
    summary: "a tenant's webhook endpoints",
    request: { params: TenantParams },
    responses: { ...endpointsListed, ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    return c.json({ data: (await listEndpoints(c.env.DB, tenant_id)).map(endpointJson) }, 200);
  },
);
