/**
 * The container specs on a real Docker daemon: the DTMA starts healthy with exactly the
 * settings Pulumi declares, is reachable on the control network and from nowhere else. The
 * backend's spec runs beside it in tests/toolboxInABox.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { DTMA_PORT } from "../components/containerSpecs";
import { createNetwork, docker, DTMA_TEST_IMAGE, localSpecs, runSpec } from "./harness/dockerCli";

const TOOL_IMAGE = "agentopia-test/busybox:latest";

function imagePresent(image: string): boolean {
  try {
    docker(["image", "inspect", image]);
    return true;
  } catch {
    return false;
  }
}

describe("local end-to-end harness: container specs on a real Docker daemon", function () {
  this.timeout(120_000);
  const accountId = `harness-${randomBytes(3).toString("hex")}`;
  const token = randomBytes(32).toString("hex");
  const specs = localSpecs(accountId, token, "http://127.0.0.1:9/v1");
  /**
   * One HTTP/1.0 GET from a throw-away container on `net` (busybox's static `wget` crashes on
   * name lookups here; `nc` does not). Returns the status code and body.
   */
  const fromNetwork = (net: string, url: string, bearer?: string) => {
    const { host, port, pathname } = new URL(url);
    const auth = bearer ? `Authorization: Bearer ${bearer}\\r\\n` : "";
    const raw = docker([
      "run",
      "--rm",
      "--network",
      net,
      TOOL_IMAGE,
      "sh",
      "-c",
      `printf 'GET ${pathname} HTTP/1.0\\r\\nHost: ${host}\\r\\n${auth}\\r\\n' | nc -w 3 ${host.split(":")[0]} ${port}`,
    ]);
    const [head = "", body = ""] = raw.split("\r\n\r\n");
    return { status: Number(head.split(" ")[1]), body };
  };

  before(function () {
    // scripts/run.sh builds both images before the tests; without them this suite cannot say anything.
    for (const image of [DTMA_TEST_IMAGE, TOOL_IMAGE]) {
      assert.ok(imagePresent(image), `${image} is missing: run bash scripts/build-test-images.sh`);
    }
    for (const net of specs.networks) createNetwork(net);
    runSpec(specs.dtma);
    const deadline = Date.now() + 90_000;
    let health = "";
    while (Date.now() < deadline) {
      health = docker(["inspect", "--format", "{{.State.Health.Status}}", specs.dtma.name]);
      if (health === "healthy" || health === "unhealthy") break;
      execSleep(0.5);
    }
    assert.equal(health, "healthy", docker(["logs", "--tail", "20", specs.dtma.name]));
  });

  after(function () {
    for (const args of [
      ["rm", "-f", specs.dtma.name],
      ...specs.networks.map((n) => ["network", "rm", n.name]),
    ]) {
      try {
        docker(args);
      } catch {
        // already gone
      }
    }
    // Tool networks the DTMA may have created for itself carry the same name: removed above.
  });

  it("starts the DTMA healthy, non-root, with every sandbox setting the spec declares", function () {
    const info = JSON.parse(docker(["inspect", specs.dtma.name])) as [
      {
        Config: { User: string; Labels: Record<string, string> };
        HostConfig: {
          ReadonlyRootfs: boolean;
          CapDrop: string[];
          SecurityOpt: string[];
          Memory: number;
          GroupAdd: string[];
          PortBindings: Record<string, unknown>;
          RestartPolicy: { Name: string };
          Init: boolean;
          LogConfig: { Type: string; Config: Record<string, string> };
        };
      },
    ];
    const { Config, HostConfig } = info[0];
    assert.notEqual(Config.User, "", "the DTMA image runs as a non-root user");
    assert.equal(HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(HostConfig.CapDrop, ["ALL"]);
    assert.ok(HostConfig.SecurityOpt.includes("no-new-privileges:true"));
    assert.equal(HostConfig.Memory, 160 * 1024 * 1024);
    assert.deepEqual(HostConfig.GroupAdd, specs.dtma.groupAdd);
    assert.deepEqual(HostConfig.PortBindings, {});
    assert.equal(HostConfig.RestartPolicy.Name, "unless-stopped");
    assert.equal(HostConfig.Init, true);
    assert.deepEqual(HostConfig.LogConfig, { Type: "json-file", Config: specs.dtma.logOpts });
    assert.equal(Config.Labels["agentopia.role"], "dtma");
  });

  // The static busybox cannot resolve names through getaddrinfo, so HTTP goes to the address
  // and names are checked with its own resolver against Docker's DNS (127.0.0.11).
  const network = (key: "control") => specs.networks.find((n) => n.key === key)!.name;
  const dtmaAddress = () =>
    docker([
      "inspect",
      "--format",
      `{{(index .NetworkSettings.Networks "${network("control")}").IPAddress}}`,
      specs.dtma.name,
    ]);
  const resolves = (net: string) => {
    try {
      docker(["run", "--rm", "--network", net, TOOL_IMAGE, "nslookup", "dtma", "127.0.0.11"]);
      return true;
    } catch {
      return false;
    }
  };

  it("answers on the control network as `dtma`, and its token is required there", function () {
    const url = `http://${dtmaAddress()}:${DTMA_PORT}`;
    assert.ok(
      resolves(network("control")),
      "the backend's DTMA_URL name resolves on the control network",
    );
    const health = fromNetwork(network("control"), `${url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.body), { status: "ok" });
    const status = fromNetwork(network("control"), `${url}/status`, token);
    assert.equal(status.status, 200);
    assert.equal((JSON.parse(status.body) as { service: string }).service, "DTMA");
    assert.equal(fromNetwork(network("control"), `${url}/status`).status, 401);
  });

  it("is unreachable from a tool's network, by name and by address", function () {
    // A bridge like the one the DTMA gives each tool (decision 0026).
    const toolNet = `${specs.dtma.env.DTMA_TOOL_NETWORK}.probe`;
    docker(["network", "create", "--driver", "bridge", toolNet]);
    try {
      assert.equal(resolves(toolNet), false, "`dtma` must not resolve on a tool's network");
      assert.throws(
        () => fromNetwork(toolNet, `http://${dtmaAddress()}:${DTMA_PORT}/health`),
        /timed out|refused|unreachable/,
      );
    } finally {
      docker(["network", "rm", toolNet]);
    }
  });
});

function execSleep(seconds: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, seconds * 1000);
}
