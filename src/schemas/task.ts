import { z } from "@hono/zod-openapi";

/** The task object, bare, exactly as the upstream shapes it (plus the tenant's price). */
export const TaskObjectSchema = z
  .object({
    id: z.string(),
    status: z.enum(["NOT_START", "SUBMITTED", "IN_PROGRESS", "MODAL", "SUCCESS", "FAILURE", "CANCEL"]),
    action: z.string(),
    progress: z.string().openapi({ example: "100%" }),
    prompt: z.string().nullable(),
    grid_image_url: z.string().optional(),
    image_urls: z.array(z.string()).optional(),
    video_url: z.string().optional(),
    video_urls: z.array(z.string()).optional(),
    buttons: z.array(z.object({ customId: z.string(), label: z.string() })).optional(),
    fail_reason: z.string().nullable(),
    cost: z.number().openapi({ description: "the tenant's price in USD" }),
    created: z.number().int(),
    completed: z.number().int().nullable(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough()
  .openapi("Task");

/** The unified task query's shape. */
export const UnifiedTaskSchema = z
  .object({
    code: z.literal(200),
    data: z.object({
      id: z.string(),
      status: z.enum(["pending", "processing", "completed", "failed", "cancelled"]),
      progress: z.number().int(),
      result: z.object({ images: z.array(z.object({ url: z.array(z.string()) })) }).nullable(),
      error: z.object({ code: z.string(), message: z.string() }).nullable(),
    }),
  })
  .openapi("UnifiedTask");
