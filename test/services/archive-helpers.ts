/** History for the archive tests (test/services/archive.test.ts, test/routes/finance/archive-reads.test.ts). */
import { env } from "cloudflare:test";
import { settleTask } from "../../src/db/admission";
import { credit } from "../../src/db/credits";
import { admittedTask } from "../db/money-helpers";
import { tenantWithKey } from "../helpers";

export const DAY = 86_400_000;
export const AGE = 90 * DAY;

/** The 10th of the month about seven months back, and of the month after: both past the age. */
function oldMonths(): [number, number] {
  const d = new Date(Date.now() - 210 * DAY);
  return [
    Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 10),
    Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 10),
  ];
}

/**
 * A tenant with: an old top-up, old settled tasks in two months (a success, a refunded
 * failure), an old task still open, a settled task 10 days old, and a top-up today.
 */
export async function tenantWithHistory() {
  const t = await tenantWithKey(0);
  const [m1, m2] = oldMonths();
  await credit(env.DB, t.tenantId, "topup", 10_000_000, "old funds", m1 - 1000);
  const settled = async (at: number, status: "SUCCESS" | "FAILURE") => {
    const id = await admittedTask(t, 1_000, at);
    await settleTask(env.DB, {
      taskId: id,
      status,
      refund: status === "FAILURE",
      reason: status === "FAILURE" ? "failed" : null,
      failReason: null,
      upstreamTaskId: null,
      at: at + 60_000,
    });
    return id;
  };
  const old = [
    await settled(m1, "SUCCESS"),
    await settled(m1 + 1000, "FAILURE"),
    await settled(m2, "SUCCESS"),
  ];
  const open = await admittedTask(t, 1_000, m1 + 2000);
  const young = await settled(Date.now() - 10 * DAY, "FAILURE");
  await credit(env.DB, t.tenantId, "topup", 500_000, "new funds");
  return { ...t, old, open, young, m1, m2 };
}
