import { createRoute } from "@hono/zod-openapi";
import { createRouter, errorResponses } from "../../../http";
import { UpstreamPatch, UpstreamSchema } from "../../../schemas/upstream";
import { changeUpstream, oneUpstreamView } from "../../../services/upstreams";
import { AREAS, body, json, UpstreamParams } from "../../helpers";

export const updateUpstreamRoute = createRouter().openapi(
  createRoute({
    method: "patch",
    path: "/admin/upstreams/{upstream_id}",
    ...AREAS.adminUpstreams,
    summary: "change an upstream (weight, priority, cap, actions, enabled; URL and key except for `default`)",
    description:
      "The `default` member's URL and key come from UPSTREAM_BASE_URL/UPSTREAM_API_KEY: changing them here is a 409 `upstream_default_fixed`.",
    request: { params: UpstreamParams, body: body(UpstreamPatch) },
    responses: { 200: json(UpstreamSchema, "the upstream"), ...errorResponses(400, 401, 404, 409, 500) },
  }),
  async (c) => {
    const row = await changeUpstream(c.env, c.req.valid("param").upstream_id, c.req.valid("json"));
    return c.json(await oneUpstreamView(c.env, row), 200);
  },
);
