import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { driveToEnd, submit, tenantWithKey } from "../helpers";

describe("sse smoke", () => {
  it("streams a finished task", async () => {
    const t = await tenantWithKey();
    const res = await submit(t.key, "imagine", { prompt: "a cat" });
    const taskId = res.body.data[0].task_id;
    await driveToEnd(taskId, t.key);
    const stream = await SELF.fetch(`http://gw.test/v1/midjourney/${taskId}/events?last_event_id=0`, {
      headers: { authorization: `Bearer ${t.key}` },
    });
    expect(stream.status).toBe(200);
    const text = await stream.text();
    console.log(text.slice(0, 2000));
    expect(text).toContain("SUCCESS");
  });
});
