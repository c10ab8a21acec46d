import { z } from "@hono/zod-openapi";
import { TASK_ID_PATTERN } from "../domain/ids";
import { MAX_TTL_SECONDS } from "../domain/stream-token";

/** What a stream token is minted for: some or all of a tenant's tasks, for a bounded time. */
export const StreamTokenRequest = z
  .strictObject({
    task_ids: z
      .array(z.string().regex(TASK_ID_PATTERN, "must be a task id"))
      .min(1)
      .max(100)
      .optional()
      .openapi({ description: "limit the token to these tasks; omit for all the tenant's tasks" }),
    ttl_seconds: z.number().int().min(10).max(MAX_TTL_SECONDS).default(600),
  })
  .openapi("StreamTokenRequest");

export const StreamTokenResponse = z
  .object({ token: z.string(), expires_at: z.string(), task_ids: z.array(z.string()).nullable() })
  .openapi("StreamToken");

export type StreamTokenInput = z.infer<typeof StreamTokenRequest>;
export type StreamToken = z.infer<typeof StreamTokenResponse>;
