import { z } from "@hono/zod-openapi";
import { type Action, SPEEDS, VIDEO_TYPES } from "../../../domain/actions";
import { TASK_ID_PATTERN } from "../../../domain/ids";
import { publicUrlProblem } from "../../../domain/public-url";

/**
 * Image inputs: a public http(s) URL (src/domain/public-url.ts: no loopback, private,
 * link-local or metadata host, no credentials, in every environment: the upstream fetches
 * these, never the gateway) or a base64 data URI of at most 12 MiB decoded.
 */
const MAX_IMAGE_BYTES = 12 * 1024 * 1024;
const INPUT_URL_RULES = { schemes: ["http:", "https:"], allowLoopback: false } as const;
const IMAGE_REF_MESSAGE = "must be an http(s) URL or a base64 data URI of at most 12 MiB";

function dataUriOk(value: string): boolean {
  const match = /^data:[\w/+.-]+;base64,([A-Za-z0-9+/=\s]+)$/.exec(value);
  return match !== null && Math.floor((match[1]!.length * 3) / 4) <= MAX_IMAGE_BYTES;
}

/** Why an image input is refused, or null. */
export function imageRefProblem(value: string): string | null {
  if (value.startsWith("data:")) return dataUriOk(value) ? null : IMAGE_REF_MESSAGE;
  const problem = publicUrlProblem(value, INPUT_URL_RULES);
  if (problem === "must be an absolute URL" || problem === "must be an http(s) URL") return IMAGE_REF_MESSAGE;
  return problem;
}

const imageRef = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    const problem = imageRefProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .openapi({ example: "https://example.com/cat.png" });

/**
 * --cref/--sref/--dref values, Midjourney syntax: one or more space-separated style codes
 * (numbers or words like "random") or image URLs, each with an optional "::weight". Every
 * token that is not a plain code is checked like an image input.
 */
export function imageRefsProblem(value: string): string | null {
  for (const token of value.split(/\s+/).filter(Boolean)) {
    const bare = token.replace(/::-?\d+(\.\d+)?$/, "");
    if (/^[A-Za-z0-9_-]+$/.test(bare)) continue;
    const problem = bare.startsWith("data:")
      ? dataUriOk(bare)
        ? null
        : IMAGE_REF_MESSAGE
      : publicUrlProblem(bare, INPUT_URL_RULES);
    if (problem) {
      const shown = bare.length > 80 ? `${bare.slice(0, 80)}…` : bare;
      return `'${shown}' ${problem === "must be an absolute URL" ? "must be a style code or an http(s) URL" : problem}`;
    }
  }
  return null;
}

const imageRefs = z
  .string()
  .max(4096)
  .superRefine((value, ctx) => {
    const problem = imageRefsProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .optional()
  .openapi({ description: "style codes and/or public http(s) image URLs, separated by spaces" });

const taskId = z
  .string()
  .regex(TASK_ID_PATTERN, "must be a task id like task_01KV52C0TEJSYZMCG0NCS4YWKK")
  .openapi({ example: "task_01KV52C0TEJSYZMCG0NCS4YWKK" });
const speed = z.enum(SPEEDS).optional().openapi({ description: "relax (default), fast or turbo" });
/** Metadata rides with the task into storage, events and webhooks: bounded in size and depth. */
export const MAX_METADATA_BYTES = 16 * 1024;
export const MAX_METADATA_DEPTH = 5;
const depthOf = (value: unknown): number =>
  value && typeof value === "object"
    ? 1 + Math.max(0, ...Object.values(value as Record<string, unknown>).map(depthOf))
    : 0;
const metadata = z
  .record(z.string(), z.unknown())
  .superRefine((value, ctx) => {
    if (new TextEncoder().encode(JSON.stringify(value)).length > MAX_METADATA_BYTES) {
      ctx.addIssue({ code: "custom", message: `must be at most ${MAX_METADATA_BYTES} bytes of JSON` });
    } else if (depthOf(value) > MAX_METADATA_DEPTH) {
      ctx.addIssue({ code: "custom", message: `must nest at most ${MAX_METADATA_DEPTH} levels` });
    }
  })
  .optional()
  .openapi({
    description: `kept with the task and returned in its views and webhooks; at most ${MAX_METADATA_BYTES} bytes of JSON, ${MAX_METADATA_DEPTH} levels deep`,
  });
const customId = z.string().min(1).max(512);
const gridIndex = z.number().int().min(1).max(4);
const prompt = z.string().trim().min(1).max(8192);

/** Midjourney parameters shared by imagine and edits. */
const imagineParams = {
  size: z
    .string()
    .regex(/^\d{1,2}:\d{1,2}$/, 'must be an aspect ratio like "16:9"')
    .optional(),
  version: z.enum(["8.1", "7", "6.1", "5.2", "5.1"]).optional(),
  niji: z.union([z.boolean(), z.string().max(8)]).optional(),
  stylize: z.number().int().min(0).max(1000).optional(),
  chaos: z.number().int().min(0).max(100).optional(),
  weird: z.number().int().min(0).max(3000).optional(),
  quality: z.union([z.literal(0.25), z.literal(0.5), z.literal(1), z.literal(2)]).optional(),
  style: z.string().max(64).optional(),
  seed: z.number().int().min(0).max(4294967295).optional(),
  negative_prompt: z.string().max(4096).optional(),
  iw: z.number().min(0).max(3).optional(),
  cw: z.number().int().min(0).max(100).optional(),
  sw: z.number().int().min(0).max(1000).optional(),
  cref: imageRefs,
  sref: imageRefs,
  dref: imageRefs,
  tile: z.boolean().optional(),
  raw: z.boolean().optional(),
  draft: z.boolean().optional(),
  hd: z.boolean().optional(),
  stop: z.number().int().min(10).max(100).optional(),
  repeat: z.number().int().min(2).max(40).optional().openapi({
    description:
      "2-40: the upstream makes this many separate jobs (so does --repeat N / --r N in the prompt); each is its own task in `data`, charged as one job",
  }),
};

const indexXorCustomId = <T extends { index?: unknown; custom_id?: unknown }>(
  body: T,
  ctx: z.RefinementCtx,
) => {
  if (body.index !== undefined && body.custom_id !== undefined) {
    ctx.addIssue({ code: "custom", path: ["index"], message: "index and custom_id are mutually exclusive" });
  }
};

const needsIndexOrCustomId = <T extends { index?: unknown; custom_id?: unknown }>(
  body: T,
  ctx: z.RefinementCtx,
) => {
  indexXorCustomId(body, ctx);
  if (body.index === undefined && body.custom_id === undefined) {
    ctx.addIssue({ code: "custom", path: ["index"], message: "index (1-4) or custom_id is required" });
  }
};

const gridFollowUp = (name: string) =>
  z
    .strictObject({
      task_id: taskId,
      index: gridIndex.optional(),
      custom_id: customId.optional(),
      speed,
      metadata,
    })
    .superRefine(needsIndexOrCustomId)
    .openapi(name);

export const generationSchemas = {
  imagine: z
    .strictObject({
      prompt,
      image_urls: z.array(imageRef).max(4).optional(),
      ...imagineParams,
      speed,
      metadata,
    })
    .openapi("ImagineRequest"),
  edits: z
    .strictObject({ prompt, image_urls: z.array(imageRef).min(1).max(4), ...imagineParams, speed, metadata })
    .openapi("EditsRequest"),
  blend: z
    .strictObject({
      image_urls: z.array(imageRef).min(2).max(4),
      dimensions: z.enum(["SQUARE", "PORTRAIT", "LANDSCAPE"]).optional(),
      size: imagineParams.size,
      speed,
      metadata,
    })
    .openapi("BlendRequest"),
  describe: z
    .strictObject({ image_urls: z.array(imageRef).length(1), speed, metadata })
    .openapi("DescribeRequest"),
  upscale: gridFollowUp("UpscaleRequest"),
  variation: gridFollowUp("VariationRequest"),
  "high-variation": gridFollowUp("HighVariationRequest"),
  "low-variation": gridFollowUp("LowVariationRequest"),
  reroll: z
    .strictObject({ task_id: taskId, custom_id: customId.optional(), speed, metadata })
    .openapi("RerollRequest"),
  zoom: z
    .strictObject({
      task_id: taskId,
      zoom_ratio: z.number().min(1).max(2).optional(),
      index: gridIndex.optional(),
      custom_id: customId.optional(),
      speed,
      metadata,
    })
    .superRefine(indexXorCustomId)
    .openapi("ZoomRequest"),
  pan: z
    .strictObject({
      task_id: taskId,
      direction: z.enum(["left", "right", "up", "down"]).optional(),
      index: gridIndex.optional(),
      custom_id: customId.optional(),
      speed,
      metadata,
    })
    .superRefine((body, ctx) => {
      indexXorCustomId(body, ctx);
      if (body.direction === undefined && body.custom_id === undefined) {
        ctx.addIssue({ code: "custom", path: ["direction"], message: "direction or custom_id is required" });
      }
    })
    .openapi("PanRequest"),
  inpaint: z
    .strictObject({
      task_id: taskId,
      index: gridIndex.optional(),
      custom_id: customId.optional(),
      speed,
      metadata,
    })
    .superRefine(indexXorCustomId)
    .openapi("InpaintRequest"),
  modal: z
    .strictObject({
      task_id: taskId,
      prompt: prompt.optional(),
      mask_url: imageRef.optional(),
      speed,
      metadata,
    })
    .openapi("ModalRequest"),
  video: z
    .strictObject({
      image_urls: z.array(imageRef).length(1).optional(),
      task_id: taskId.optional(),
      index: z.number().int().min(0).max(3).optional(),
      prompt: z.string().max(8192).optional(),
      video_type: z.enum(VIDEO_TYPES).optional(),
      end_url: imageRef.optional(),
      batch_size: z
        .number()
        .int()
        .optional()
        .openapi({ description: "1, 2 or 4; anything else counts as 1" }),
      motion: z.enum(["low", "high"]).optional(),
      animate_mode: z.string().max(32).optional(),
      metadata,
    })
    .superRefine((body, ctx) => {
      if (!body.image_urls && !body.task_id) {
        ctx.addIssue({
          code: "custom",
          path: ["image_urls"],
          message: "image_urls (first frame) or task_id is required",
        });
      }
      if (body.image_urls && body.task_id) {
        ctx.addIssue({
          code: "custom",
          path: ["task_id"],
          message: "give either image_urls or task_id, not both",
        });
      }
      if (body.index !== undefined && !body.task_id) {
        ctx.addIssue({ code: "custom", path: ["index"], message: "index needs task_id" });
      }
    })
    .openapi("VideoRequest"),
  "remix-strong": z
    .strictObject({ task_id: taskId, index: gridIndex, prompt: prompt.optional(), speed, metadata })
    .openapi("RemixStrongRequest"),
  "remix-subtle": z
    .strictObject({ task_id: taskId, index: gridIndex, prompt: prompt.optional(), speed, metadata })
    .openapi("RemixSubtleRequest"),
} satisfies Record<Action, z.ZodType>;

export type GenerationBody = {
  task_id?: string;
  custom_id?: string;
  prompt?: string;
  speed?: (typeof SPEEDS)[number];
  video_type?: string;
  end_url?: string;
  batch_size?: number;
  metadata?: Record<string, unknown>;
  [field: string]: unknown;
};

export const SubmitResponse = z
  .object({
    code: z.literal(200),
    data: z.array(z.object({ status: z.enum(["submitted", "modal"]), task_id: taskId })),
  })
  .openapi("SubmitResponse");
