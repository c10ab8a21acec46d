import { z } from "@hono/zod-openapi";

/** Stored times are epoch milliseconds; the API shows ISO 8601. */
export const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** An optional ISO 8601 time with offset, as a query or body field. */
export const isoTimeField = (description: string) =>
  z.iso.datetime({ offset: true }).optional().openapi({ description });
