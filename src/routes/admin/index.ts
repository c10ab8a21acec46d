/** The operator API (ADMIN_TOKEN), one route (or a small verb group) per file. */
import { assetUsageRoute } from "./assets/usage";
import { adjustmentRoute, topupRoute } from "./credits";
import { createKeyRoute } from "./keys/create";
import { listKeysRoute } from "./keys/list";
import { revokeKeyRoute } from "./keys/revoke";
import { updateKeyRoute } from "./keys/update";
import { ledgerCsvRoute } from "./ledger/csv";
import { listLedgerRoute } from "./ledger/list";
import { marginRoute } from "./margin";
import { getPricesRoute } from "./prices/get";
import { updatePricesRoute } from "./prices/update";
import { reconciliationRoute } from "./reconciliation";
import { createTenantRoute } from "./tenants/create";
import { getTenantRoute } from "./tenants/get";
import { listTenantsRoute } from "./tenants/list";
import { updateTenantRoute } from "./tenants/update";
import { createUpstreamRoute } from "./upstreams/create";
import { disableUpstreamRoute } from "./upstreams/disable";
import { getUpstreamRoute } from "./upstreams/get";
import { listUpstreamsRoute } from "./upstreams/list";
import { updateUpstreamRoute } from "./upstreams/update";
import { usageRoute } from "./usage";
import { listDeliveriesRoute } from "./webhook-deliveries/list";
import { replayDeliveryRoute } from "./webhook-deliveries/replay";
import { createTenantWebhookRoute } from "./webhooks/create";
import { disableTenantWebhookRoute } from "./webhooks/disable";
import { listTenantWebhooksRoute } from "./webhooks/list";

export const adminTenantRoutes = [
  createTenantRoute,
  listTenantsRoute,
  getTenantRoute,
  updateTenantRoute,
  createKeyRoute,
  listKeysRoute,
  updateKeyRoute,
  revokeKeyRoute,
];

export const adminFinanceRoutes = [
  topupRoute,
  adjustmentRoute,
  getPricesRoute,
  updatePricesRoute,
  listLedgerRoute,
  ledgerCsvRoute,
  usageRoute,
  reconciliationRoute,
  marginRoute,
  assetUsageRoute,
];

export const adminWebhookRoutes = [
  createTenantWebhookRoute,
  listTenantWebhooksRoute,
  disableTenantWebhookRoute,
  listDeliveriesRoute,
  replayDeliveryRoute,
];

export const adminUpstreamRoutes = [
  createUpstreamRoute,
  listUpstreamsRoute,
  getUpstreamRoute,
  updateUpstreamRoute,
  disableUpstreamRoute,
];
