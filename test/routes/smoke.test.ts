import { describe, expect, it } from "vitest";
import { call, driveToEnd, submit, tenantWithKey } from "../helpers";

describe("smoke", () => {
  it("imagine → SUCCESS → upscale", async () => {
    const t = await tenantWithKey();
    const res = await submit(t.key, "imagine", { prompt: "a cat" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const taskId = res.body.data[0].task_id;
    const done = await driveToEnd(taskId, t.key);
    expect(done.status).toBe("SUCCESS");
    const up = await submit(t.key, "upscale", { task_id: taskId, index: 1 });
    expect(up.status, JSON.stringify(up.body)).toBe(200);
    const view = await driveToEnd(up.body.data[0].task_id, t.key);
    console.log(JSON.stringify(view));
    expect(view.image_urls).toHaveLength(1);
  });
});
