import { createRoute } from "@hono/zod-openapi";
import { createRouter, errorResponses } from "../../../http";
import { removeUpstream } from "../../../services/upstreams";
import { AREAS, UpstreamParams } from "../../helpers";

export const disableUpstreamRoute = createRouter().openapi(
  createRoute({
    method: "delete",
    path: "/admin/upstreams/{upstream_id}",
    ...AREAS.adminUpstreams,
    summary: "disable an upstream (its tasks in flight keep polling it)",
    description:
      "The `default` member cannot be deleted (409 `upstream_default_fixed`): PATCH it with `enabled: false`.",
    request: { params: UpstreamParams },
    responses: { 204: { description: "disabled" }, ...errorResponses(401, 404, 409) },
  }),
  async (c) => {
    await removeUpstream(c.env, c.req.valid("param").upstream_id);
    return c.body(null, 204);
  },
);
