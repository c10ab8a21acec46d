import { describe, expect, it } from "vitest";
import { call, driveToEnd, sim, submit, tenantWithKey } from "../helpers";

describe("webhook smoke", () => {
  it("delivers a signed terminal event", async () => {
    const t = await tenantWithKey();
    const sink = `s-${crypto.randomUUID()}`;
    const reg = await call("POST", `/admin/tenants/${t.tenantId}/webhooks`, {
      admin: true,
      body: { url: `https://hooks.test/_sim/webhooks/${sink}` },
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const res = await submit(t.key, "imagine", { prompt: "a cat" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const taskId = res.body.data[0].task_id;
    await driveToEnd(taskId, t.key);
    let got: any[] = [];
    for (let i = 0; i < 50 && got.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      got = await sim("GET", `/_sim/webhooks/${sink}`);
    }
    expect(got).toHaveLength(1);
    expect(JSON.parse(got[0].body).type).toBe("task.succeeded");
    expect(got[0].headers["webhook-signature"]).toMatch(/^v1,/);
    const deliveries = await call("GET", `/admin/webhook-deliveries?task_id=${taskId}`, { admin: true });
    expect(deliveries.body.data[0].status).toBe("delivered");
  });
});
