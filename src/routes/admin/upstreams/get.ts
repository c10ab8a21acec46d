import { createRoute } from "@hono/zod-openapi";
import { createRouter, errorResponses } from "../../../http";
import { UpstreamSchema } from "../../../schemas/upstream";
import { oneUpstreamView, upstreamOr404 } from "../../../services/upstreams";
import { AREAS, json, UpstreamParams } from "../../helpers";

export const getUpstreamRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/upstreams/{upstream_id}",
    ...AREAS.adminUpstreams,
    summary: "one upstream",
    request: { params: UpstreamParams },
    responses: { 200: json(UpstreamSchema, "the upstream"), ...errorResponses(401, 404) },
  }),
  async (c) => {
    const row = await upstreamOr404(c.env.DB, c.req.valid("param").upstream_id);
    return c.json(await oneUpstreamView(c.env, row), 200);
  },
);
