import { createRoute } from "@hono/zod-openapi";
import { createRouter, errorResponses } from "../../../http";
import { UpstreamCreate, UpstreamSchema } from "../../../schemas/upstream";
import { createUpstream, oneUpstreamView } from "../../../services/upstreams";
import { AREAS, body, json } from "../../helpers";

export const createUpstreamRoute = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/admin/upstreams",
    ...AREAS.adminUpstreams,
    summary: "add an upstream account to the pool",
    description:
      "The API key is encrypted at rest under UPSTREAM_KEY_SECRET (a 500 `configuration_error` when it is not set) and never returned; `key_hint` shows its last four characters.",
    request: { body: body(UpstreamCreate) },
    responses: { 201: json(UpstreamSchema, "the upstream"), ...errorResponses(400, 401, 500) },
  }),
  async (c) => c.json(await oneUpstreamView(c.env, await createUpstream(c.env, c.req.valid("json"))), 201),
);
