/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return -- tests read the JSON of Docker and of the API loosely */
import assert from "node:assert/strict";
import type { Running } from "./helpers";
import {
  BUSYBOX,
  api,
  cleanup,
  exec,
  requireImages,
  scopeContainers,
  sleepTool,
  startDtma,
} from "./helpers";

describe("concurrency", function () {
  this.timeout(180_000);
  let dtma: Running;
  before(async function () {
    await requireImages(this, BUSYBOX);
    dtma = await startDtma();
  });
  after(async () => {
    await dtma?.stop();
    await cleanup();
  });

  it("20 concurrent PUTs of one name give one container and no orphans", async () => {
    const call = api(dtma.url);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => call("PUT", "/tools/same", sleepTool())),
    );
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [200, ...Array<number>(18).fill(200), 201].sort());
    assert.equal(new Set(answers.map((a) => a.json.container_id)).size, 1);
    const { stdout } = await exec("docker", [
      "ps",
      "-a",
      "--format",
      "{{.Names}}",
      "--filter",
      `label=agentopia.tool-name=same`,
    ]);
    const mine = stdout
      .split("\n")
      .filter((n) => n.includes(`${dtma.app.tools.containerName("same")}`));
    assert.deepEqual(mine, [dtma.app.tools.containerName("same")]);
  });

  it("a different call on a busy tool gets 409, never a race", async () => {
    const call = api(dtma.url);
    const [update, conflicting] = await Promise.all([
      call("PUT", "/tools/same", sleepTool({ env: { V: "2" } })),
      (async () => {
        await new Promise((r) => setTimeout(r, 20));
        return call("PUT", "/tools/same", sleepTool({ env: { V: "3" } }));
      })(),
    ]);
    assert.equal(update.status, 200, update.text);
    assert.equal(conflicting.status, 409, conflicting.text);
    assert.equal(conflicting.json.error, "conflict");
    const tool = await dtma.client.getTool("same");
    assert.equal(tool.container_id, update.json.container_id);
  });

  it("parallel deploys of different tools all succeed", async () => {
    const call = api(dtma.url);
    const names = Array.from({ length: 8 }, (_, i) => `par-${i}`);
    const answers = await Promise.all(names.map((n) => call("PUT", `/tools/${n}`, sleepTool())));
    assert.deepEqual(
      answers.map((a) => a.status),
      names.map(() => 201),
    );
    const tools = await dtma.client.listTools();
    for (const n of names) assert.equal(tools.find((t) => t.name === n)?.state, "running", n);
    assert.equal((await scopeContainers()).length, names.length + 1);
  });
});
