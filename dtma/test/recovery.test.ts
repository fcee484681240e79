/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests read the JSON of Docker and of the API loosely */
import assert from "node:assert/strict";
import { BUSYBOX, api, cleanup, httpTool, requireImages, sleepTool, startDtma } from "./helpers";

describe("restart recovery (Docker is the only source of truth)", function () {
  this.timeout(120_000);
  before(async function () {
    await requireImages(this, BUSYBOX);
  });
  after(cleanup);

  it("a new DTMA sees the same tools, and stop and remove work on them", async () => {
    const first = await startDtma();
    const put = api(first.url);
    assert.equal(
      (await put("PUT", "/tools/alpha", httpTool({ account_tool_instance_id: "ati-a" }))).status,
      201,
    );
    assert.equal(
      (await put("PUT", "/tools/beta", sleepTool({ account_tool_instance_id: "ati-b" }))).status,
      201,
    );
    const before = await first.client.listTools();
    await first.stop(); // the tools keep running

    const second = await startDtma();
    try {
      const after = await second.client.listTools();
      assert.deepEqual(
        after.map((t) => [
          t.name,
          t.container_id,
          t.account_tool_instance_id,
          t.state,
          t.spec_hash,
        ]),
        before.map((t) => [
          t.name,
          t.container_id,
          t.account_tool_instance_id,
          "running",
          t.spec_hash,
        ]),
      );
      // The same spec is recognised from the labels: nothing is replaced.
      const again = await api(second.url)(
        "PUT",
        "/tools/alpha",
        httpTool({ account_tool_instance_id: "ati-a" }),
      );
      assert.equal(again.status, 200);
      assert.equal(again.json.changed, false);
      assert.equal((await second.client.stopTool("alpha")).state, "exited");
      await second.client.removeTool("beta");
      await second.app.sampler.refresh();
      const status = await second.client.status();
      assert.deepEqual(
        status.tool_instances.map((t) => [t.name, t.state]),
        [["alpha", "exited"]],
      );
    } finally {
      await second.stop();
    }
  });
});
