/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call -- tests read the JSON of Docker and of the API loosely */
import assert from "node:assert/strict";
import type { Running } from "./helpers";
import {
  BUSYBOX,
  NETWORK,
  api,
  cleanup,
  exec,
  inspect,
  requireImages,
  sleepTool,
  startDtma,
} from "./helpers";

describe("sandbox", function () {
  this.timeout(120_000);
  let dtma: Running;
  before(async function () {
    await requireImages(this, BUSYBOX);
    dtma = await startDtma({
      caps: { memoryMb: 128, cpus: 0.5, pids: 64, lanes: 8, rootTools: 0 },
    });
  });
  after(async () => {
    await dtma?.stop();
    await cleanup();
  });

  it("inspect shows every default", async () => {
    const res = await api(dtma.url)(
      "PUT",
      "/tools/boxed",
      sleepTool({ account_tool_instance_id: "ati-1" }),
    );
    assert.equal(res.status, 201, res.text);
    const c = await inspect(res.json.container_id);
    const h = c.HostConfig;
    assert.deepEqual(h.CapDrop, ["ALL"]);
    assert.equal(h.CapAdd, null);
    assert.deepEqual(h.SecurityOpt, ["no-new-privileges:true"]);
    assert.equal(h.ReadonlyRootfs, true);
    assert.ok(Object.keys(h.Tmpfs).includes("/tmp"));
    assert.equal(h.Memory, 128 * 1024 * 1024);
    assert.equal(h.MemorySwap, 128 * 1024 * 1024);
    assert.equal(h.NanoCpus, 0.5e9);
    assert.equal(h.PidsLimit, 64);
    assert.equal(h.Init, true);
    assert.equal(h.RestartPolicy.Name, "unless-stopped");
    assert.equal(h.Privileged, false);
    // Its own network (decision 0026), named after the tool.
    const own = `${NETWORK}.boxed`;
    assert.equal(h.NetworkMode, own);
    assert.deepEqual(h.PortBindings ?? {}, {});
    assert.deepEqual(h.Binds ?? [], []);
    assert.deepEqual(h.Devices ?? [], []);
    assert.deepEqual(c.Mounts, []);
    assert.equal(c.Config.Labels["agentopia.managed-by"], "dtma");
    assert.equal(c.Config.Labels["agentopia.tool-name"], "boxed");
    assert.equal(c.Config.Labels["agentopia.account-tool-instance-id"], "ati-1");
    assert.match(c.Config.Labels["agentopia.spec-hash"], /^[0-9a-f]{32}$/);
    assert.deepEqual(Object.keys(c.NetworkSettings.Networks), [own]);
    assert.ok(c.NetworkSettings.Networks[own].Aliases.includes("boxed"));
    const net = JSON.parse((await exec("docker", ["network", "inspect", own])).stdout)[0];
    assert.equal(net.Driver, "bridge");
    assert.equal(net.Labels["agentopia.tool-name"], "boxed");
    assert.deepEqual(Object.keys(net.Containers).length, 1, "the tool alone (no gateway here)");
  });

  it("a tool cannot see the Docker socket, write its root, or gain capabilities", async () => {
    const id = (await dtma.client.getTool("boxed")).container_id;
    // The image holds only /bin/busybox, so every probe runs through it.
    const run = (...argv: string[]) => exec("docker", ["exec", id, "busybox", ...argv]);
    await run("test", "-e", "/bin/busybox"); // the probe itself works
    await assert.rejects(run("test", "-e", "/var/run/docker.sock"));
    await assert.rejects(run("test", "-e", "/run/docker.sock"));
    await assert.rejects(run("touch", "/probe"));
    await run("touch", "/tmp/probe");
    const status = (await run("cat", "/proc/self/status")).stdout;
    assert.match(status, /CapEff:\s+0000000000000000/);
    assert.match(status, /NoNewPrivs:\s+1/);
  });

  it("a tool with network policy none has only loopback", async () => {
    const res = await api(dtma.url)("PUT", "/tools/offline", sleepTool({ network: "none" }));
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.endpoint, null);
    const dev = (
      await exec("docker", ["exec", res.json.container_id, "busybox", "cat", "/proc/net/dev"])
    ).stdout;
    const interfaces = dev
      .split("\n")
      .slice(2)
      .map((l) => l.split(":")[0].trim())
      .filter(Boolean);
    assert.deepEqual(interfaces, ["lo"]);
  });
});
