import { createRoute, z } from "@hono/zod-openapi";
import { listUpstreams } from "../../../db/upstreams";
import { createRouter, errorResponses } from "../../../http";
import { UpstreamSchema } from "../../../schemas/upstream";
import { upstreamViews } from "../../../services/upstreams";
import { AREAS, json } from "../../helpers";

export const listUpstreamsRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/upstreams",
    ...AREAS.adminUpstreams,
    summary: "the upstream pool (the default member first, disabled ones included)",
    responses: {
      200: json(z.object({ data: z.array(UpstreamSchema) }), "upstreams"),
      ...errorResponses(401),
    },
  }),
  async (c) => {
    const rows = await listUpstreams(c.env.DB);
    return c.json({ data: await upstreamViews(c.env, rows) }, 200);
  },
);
