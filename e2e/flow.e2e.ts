import { describe, expect, it } from "vitest";
import { api, tenantWithKey } from "./support";

describe("README flow against npm start", () => {
  it("create tenant and key, imagine, poll to SUCCESS, upscale", async () => {
    const { key } = await tenantWithKey();
    const submitted = await api("POST", "/v1/midjourney/generations/imagine", {
      key,
      body: { prompt: "a red fox" },
    });
    expect(submitted.status).toBe(200);
    const taskId = submitted.body.data[0].task_id;
    let task: any;
    for (let i = 0; i < 60; i++) {
      task = (await api("GET", `/v1/midjourney/${taskId}`, { key })).body;
      if (task.status === "SUCCESS") break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(task.status).toBe("SUCCESS");
    expect(task.image_urls).toHaveLength(4);
    const upscale = await api("POST", "/v1/midjourney/generations/upscale", {
      key,
      body: { task_id: taskId, index: 1 },
    });
    expect(upscale.status).toBe(200);
  });
});
