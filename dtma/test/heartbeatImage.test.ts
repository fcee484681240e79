/**
 * The DTMA reports the image it runs (issue 11): the container spec passes it as DTMA_IMAGE and
 * every heartbeat carries it as `dtma_image`, since `dtma_version` (the package's) is the same
 * for every build. A fleet upgrade waits for it.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError, loadConfig } from "../src/config";
import type { Heartbeat, Status } from "../src/api";
import { HeartbeatSender } from "../src/heartbeat";
import { createLogger } from "../src/log";
import { Metrics } from "../src/metrics";

const env = {
  DTMA_BEARER_TOKEN: "t".repeat(43),
  AGENTOPIA_API_BASE_URL: "http://127.0.0.1:1/v1",
};
const status: Status = {
  status: "ok",
  service: "DTMA",
  version: "0.1.0",
  uptime_seconds: 1,
  sampled_at: "",
  system_metrics: {} as never,
  docker: { reachable: true, version: "x" },
  tool_instances: [],
};

describe("the DTMA reports the image it runs", () => {
  it("DTMA_IMAGE is read, and refused when it is not an image reference", () => {
    const image = `ghcr.io/agentopia/toolboxes-dtma@sha256:${"ab".repeat(32)}`;
    assert.equal(loadConfig({ ...env, DTMA_IMAGE: image }).image, image);
    assert.equal(loadConfig(env).image, undefined);
    assert.throws(() => loadConfig({ ...env, DTMA_IMAGE: "two words" }), ConfigError);
  });

  it("every heartbeat carries dtma_image beside dtma_version", async () => {
    const bodies: Heartbeat[] = [];
    const server = http.createServer((req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => (text += c.toString()));
      req.on("end", () => {
        bodies.push(JSON.parse(text) as Heartbeat);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/heartbeat`;
    const send = (image?: string) =>
      new HeartbeatSender({
        url,
        token: env.DTMA_BEARER_TOKEN,
        intervalMs: 60_000,
        status: () => status,
        log: createLogger("silent"),
        metrics: new Metrics(),
        image,
      }).beat();
    try {
      assert.equal(await send("agentopia/dtma:v2"), true);
      assert.equal(await send(), true);
      assert.equal(bodies[0].dtma_image, "agentopia/dtma:v2");
      assert.equal(bodies[0].dtma_version, "0.1.0");
      assert.equal("dtma_image" in bodies[1], false, "none configured, none reported");
    } finally {
      server.close();
    }
  });
});
