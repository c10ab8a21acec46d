/** The tenant API beside generations and streams (sub-keys), one route or verb group per file. */
import { accountRoute } from "./account";
import { taskRoute, unifiedTaskRoute } from "./tasks";
import { usageRoute } from "./usage";
import { createWebhookRoute } from "./webhooks/create";
import { disableWebhookRoute } from "./webhooks/disable";
import { listWebhooksRoute } from "./webhooks/list";

export const taskRoutes = [taskRoute, unifiedTaskRoute];
export const accountRoutes = [accountRoute, usageRoute];
export const webhookRoutes = [createWebhookRoute, listWebhooksRoute, disableWebhookRoute];
