/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument -- tests read the JSON of Docker and of the API loosely */
import assert from "node:assert/strict";
import { DtmaError } from "../src/client";
import type { Running } from "./helpers";
import {
  BUSYBOX,
  TOKEN,
  TOKEN_B,
  api,
  cleanup,
  exec,
  httpTool,
  requireImages,
  sleepTool,
  startDtma,
} from "./helpers";

describe("DTMA API (in-process, real Docker)", function () {
  this.timeout(120_000);
  let dtma: Running;
  let call: ReturnType<typeof api>;

  before(async function () {
    await requireImages(this, BUSYBOX);
    dtma = await startDtma();
    call = api(dtma.url);
  });
  after(async () => {
    await dtma?.stop();
    await cleanup();
  });

  it("GET /health answers without a token and without a version", async () => {
    const res = await api(dtma.url, null)("GET", "/health");
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: "ok" });
  });

  it("every other route refuses a missing, malformed or wrong token, and counts it", async () => {
    const routes: [string, string][] = [
      ["GET", "/status"],
      ["GET", "/metrics"],
      ["GET", "/tools"],
      ["PUT", "/tools/x"],
      ["GET", "/tools/x"],
      ["DELETE", "/tools/x"],
      ["POST", "/tools/x/start"],
      ["POST", "/tools/x/stop"],
      ["POST", "/tools/x/restart"],
      ["GET", "/tools/x/logs"],
      ["GET", "/tools/x/wait"],
      // The upgrade routes, asked without the upgrade: the token still comes first.
      ["POST", "/tools/x/attach"],
      ["POST", "/tools/x/lanes"],
      ["GET", "/no-such-route"],
    ];
    for (const [method, path] of routes) {
      const none = await api(dtma.url, null)(method, path);
      assert.equal(none.status, 401, `${method} ${path} without a token`);
      assert.equal(none.json.error, "unauthorized");
      const wrong = await api(dtma.url, TOKEN_B)(method, path);
      assert.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
      const malformed = await call(method, path, undefined, { authorization: `Basic ${TOKEN}` });
      assert.equal(malformed.status, 401, `${method} ${path} with a malformed header`);
    }
    const metrics = await call("GET", "/metrics");
    assert.match(
      metrics.text,
      new RegExp(`dtma_auth_failures_total\\{reason="missing"\\} ${routes.length}`),
    );
    assert.match(
      metrics.text,
      new RegExp(`dtma_auth_failures_total\\{reason="invalid"\\} ${routes.length}`),
    );
    assert.match(
      metrics.text,
      new RegExp(`dtma_auth_failures_total\\{reason="malformed"\\} ${routes.length}`),
    );
  });

  it("PUT deploys (201), the same spec again changes nothing (200), GET shows it", async () => {
    const first = await call(
      "PUT",
      "/tools/web",
      httpTool({ account_tool_instance_id: "ati-web" }),
    );
    assert.equal(first.status, 201, first.text);
    for (const field of ["name", "image", "state", "health", "account_tool_instance_id"])
      assert.ok(field in first.json, field);
    assert.equal(first.json.state, "running");
    assert.equal(first.json.changed, true);
    assert.equal(first.json.endpoint, "http://web:8080/");
    const again = await call(
      "PUT",
      "/tools/web",
      httpTool({ account_tool_instance_id: "ati-web" }),
    );
    assert.equal(again.status, 200);
    assert.equal(again.json.changed, false);
    assert.equal(again.json.container_id, first.json.container_id);
    const got = await dtma.client.getTool("web");
    assert.equal(got.account_tool_instance_id, "ati-web");
    assert.equal(got.image, BUSYBOX);
    const list = await dtma.client.listTools();
    assert.deepEqual(
      list.map((t) => t.name),
      ["web"],
    );
  });

  it("a changed spec replaces the container; a spec that cannot start keeps the old one", async () => {
    const before = await dtma.client.getTool("web");
    const updated = await call(
      "PUT",
      "/tools/web",
      httpTool({ account_tool_instance_id: "ati-web", env: { MODE: "2" } }),
    );
    assert.equal(updated.status, 200, updated.text);
    assert.equal(updated.json.changed, true);
    assert.notEqual(updated.json.container_id, before.container_id);
    const broken = await call("PUT", "/tools/web", httpTool({ command: ["/no/such/binary"] }));
    assert.equal(broken.status, 422, broken.text);
    assert.equal(broken.json.field, "command");
    const after = await dtma.client.getTool("web");
    assert.equal(after.container_id, updated.json.container_id);
    assert.equal(after.state, "running");
  });

  it("GET /status is served from a sample with system metrics, docker and tool instances", async () => {
    await dtma.app.sampler.refresh();
    const status = await dtma.client.status();
    assert.equal(status.service, "DTMA");
    assert.equal(status.status, "ok");
    assert.equal(status.version, "0.0.0-test");
    assert.equal(status.docker.reachable, true);
    assert.ok(status.docker.version);
    assert.ok(status.system_metrics.cpu.count >= 1);
    assert.ok(status.system_metrics.memory.total_bytes > 0);
    assert.ok(status.system_metrics.disk.total_bytes > 0);
    assert.ok(status.system_metrics.containers.total >= 1);
    const web = status.tool_instances.find((t) => t.name === "web");
    assert.ok(web);
    assert.equal(web.account_tool_instance_id, "ati-web");
    assert.equal(web.state, "running");
    assert.equal(typeof web.restarts, "number");
  });

  it("GET /metrics is Prometheus text", async () => {
    const text = await dtma.client.metrics();
    assert.match(text, /# TYPE dtma_http_requests_total counter/);
    assert.match(
      text,
      /dtma_http_request_duration_seconds_bucket\{route="\/tools\/:name",le="\+Inf"\} \d+/,
    );
    assert.match(text, /dtma_tools\{state="running"\} 1/);
    assert.match(text, /process_resident_memory_bytes \d+/);
  });

  it("stop, start and restart change the container's state", async () => {
    const stopped = await dtma.client.stopTool("web");
    assert.equal(stopped.state, "exited");
    const waited = await dtma.client.waitForTool("web", "exited", 5);
    assert.equal(waited.reached, true);
    const started = await dtma.client.startTool("web");
    assert.equal(started.state, "running");
    const restarted = await dtma.client.restartTool("web");
    assert.equal(restarted.state, "running");
    assert.notEqual(restarted.started_at, started.started_at);
  });

  it("GET logs demultiplexes stdout and stderr and honours tail (an http tool)", async () => {
    const spec = httpTool({
      // Pauses keep the order deterministic: the daemon reads the two pipes concurrently.
      command: [
        "sh",
        "-c",
        "echo out-1; sleep 0.3; echo err-1 >&2; sleep 0.3; echo out-2; sleep 3600",
      ],
    });
    assert.equal((await call("PUT", "/tools/talker", spec)).status, 201);
    let logs = await dtma.client.toolLogs("talker");
    for (let i = 0; i < 50 && logs.entries.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      logs = await dtma.client.toolLogs("talker");
    }
    assert.deepEqual(logs.entries, [
      { stream: "stdout", text: "out-1" },
      { stream: "stderr", text: "err-1" },
      { stream: "stdout", text: "out-2" },
    ]);
    const tail = await dtma.client.toolLogs("talker", { tail: 1 });
    assert.deepEqual(tail.entries, [{ stream: "stdout", text: "out-2" }]);
    const future = await dtma.client.toolLogs("talker", { since: "2999-01-01T00:00:00Z" });
    assert.deepEqual(future.entries, []);
    const bad = await call("GET", "/tools/talker/logs?tail=lots");
    assert.equal(bad.status, 400);
    assert.equal(bad.json.field, "tail");
    const badSince = await call("GET", "/tools/talker/logs?since=yesterday");
    assert.equal(badSince.json.field, "since");
  });

  it("GET logs of a stdio tool holds stderr only: its stdout is the protocol channel", async () => {
    // stdout comes last, so Docker's own tail (applied before it drops stdout) would find nothing.
    const spec = sleepTool({
      command: [
        "sh",
        "-c",
        "echo err-1 >&2; echo err-2 >&2; sleep 0.3; echo result-1; echo result-2; sleep 3600",
      ],
    });
    const created = await call("PUT", "/tools/quiet", spec);
    assert.equal(created.status, 201);
    // Docker's json-file log has every line (docker logs shows them); the route stderr only.
    const dockerLogs = () => exec("docker", ["logs", created.json.container_id]);
    let all = await dockerLogs();
    for (let i = 0; i < 50 && !all.stdout.includes("result-2"); i++) {
      await new Promise((r) => setTimeout(r, 100));
      all = await dockerLogs();
    }
    assert.equal(all.stdout, "result-1\nresult-2\n");
    assert.equal(all.stderr, "err-1\nerr-2\n");
    const logs = await dtma.client.toolLogs("quiet");
    assert.deepEqual(logs.entries, [
      { stream: "stderr", text: "err-1" },
      { stream: "stderr", text: "err-2" },
    ]);
    const last = await dtma.client.toolLogs("quiet", { tail: 1 });
    assert.deepEqual(last.entries, [{ stream: "stderr", text: "err-2" }]);
    assert.deepEqual((await dtma.client.toolLogs("quiet", { tail: 0 })).entries, []);
    const future = await dtma.client.toolLogs("quiet", { since: "2999-01-01T00:00:00Z" });
    assert.deepEqual(future.entries, []);
    await dtma.client.removeTool("quiet");
  });

  it("GET wait long-polls until the state, or answers reached:false at the timeout", async () => {
    const running = await dtma.client.waitForTool("talker", "running", 5);
    assert.equal(running.reached, true);
    const never = await dtma.client.waitForTool("talker", "healthy", 1);
    assert.equal(never.reached, false);
    assert.equal(never.tool?.name, "talker");
    const bad = await call("GET", "/tools/talker/wait?state=sleeping");
    assert.equal(bad.status, 400);
    assert.equal(bad.json.field, "state");
  });

  it("DELETE removes the tool (204); then it is 404 and wait for removed is reached", async () => {
    assert.equal((await call("DELETE", "/tools/talker")).status, 204);
    const gone = await call("GET", "/tools/talker");
    assert.equal(gone.status, 404);
    assert.equal(gone.json.error, "tool_not_found");
    assert.equal((await call("DELETE", "/tools/talker")).status, 404);
    assert.equal((await call("POST", "/tools/talker/stop")).status, 404);
    assert.equal((await dtma.client.waitForTool("talker", "removed", 1)).reached, true);
    await assert.rejects(
      dtma.client.getTool("talker"),
      (e: unknown) => e instanceof DtmaError && e.status === 404,
    );
  });

  it("refuses attempts to loosen the sandbox with 400 naming the field", async () => {
    const attempts: [Record<string, unknown>, string][] = [
      [sleepTool({ privileged: true }), "privileged"],
      [sleepTool({ network: "host" }), "network"],
      [sleepTool({ binds: ["/:/host"] }), "binds"],
      [sleepTool({ devices: ["/dev/kvm"] }), "devices"],
      [sleepTool({ cap_add: ["SYS_ADMIN"] }), "cap_add"],
      [sleepTool({ image: "--privileged" }), "image"],
      [sleepTool({ env: { "--rm": "x" } }), "env.--rm"],
      [sleepTool({ resources: { memory_mb: 100_000 } }), "resources.memory_mb"],
      [sleepTool({ resources: { cpus: 8 } }), "resources.cpus"],
      [sleepTool({ resources: { pids: 1_000_000 } }), "resources.pids"],
      [
        sleepTool({ transport: { type: "http", port: 8080, host_port: 80 } }),
        "transport.host_port",
      ],
    ];
    for (const [body, field] of attempts) {
      const res = await call("PUT", "/tools/sneaky", body);
      assert.equal(res.status, 400, `${field}: ${res.text}`);
      assert.equal(res.json.field, field);
    }
    assert.equal((await call("GET", "/tools/sneaky")).status, 404);
  });

  it("names that are not DNS labels get 400 naming the rule", async () => {
    for (const name of ["My Tool", "UPPER", "-x", "x-", "a_b", "a.b", "x".repeat(64)]) {
      const res = await call("PUT", `/tools/${encodeURIComponent(name)}`, sleepTool());
      assert.equal(res.status, 400, name);
      assert.equal(res.json.field, "name");
      assert.match(res.json.message, /1-63 characters of a-z, 0-9 and '-'/);
    }
  });

  it("bodies: not JSON 400, wrong content type 415, too large 413, unknown route 404, wrong method 405", async () => {
    assert.equal((await call("PUT", "/tools/b", "{not json")).status, 400);
    assert.equal(
      (await call("PUT", "/tools/b", "{}", { "content-type": "text/plain" })).status,
      415,
    );
    const big = sleepTool({ env: { BIG: "x".repeat(200_000) } });
    assert.equal((await call("PUT", "/tools/b", big)).status, 413);
    assert.equal((await call("GET", "/nope")).status, 404);
    assert.equal((await call("PATCH", "/tools/b")).status, 405);
  });

  it("a secret is never in labels, logs or answers", async () => {
    const res = await call(
      "PUT",
      "/tools/secretive",
      sleepTool({ secrets: { API_KEY: "sk-live-VERY-SECRET" } }),
    );
    assert.equal(res.status, 201, res.text);
    assert.ok(!res.text.includes("VERY-SECRET"));
    const c = await (await import("./helpers")).inspect(res.json.container_id);
    assert.ok(!JSON.stringify(c.Config.Labels).includes("VERY-SECRET"));
    assert.ok((c.Config.Env as string[]).includes("API_KEY=sk-live-VERY-SECRET"));
    assert.ok(!(await call("GET", "/tools")).text.includes("VERY-SECRET"));
  });
});

describe("token rotation", function () {
  this.timeout(30_000);

  it("accepts current and previous during a rotation, and refuses the previous once it ends", async () => {
    const during = await startDtma({ tokens: { current: TOKEN_B, previous: TOKEN } });
    try {
      assert.equal((await api(during.url, TOKEN_B)("GET", "/tools")).status, 200);
      assert.equal((await api(during.url, TOKEN)("GET", "/tools")).status, 200);
    } finally {
      await during.stop();
    }
    const afterRotation = await startDtma({ tokens: { current: TOKEN_B, previous: undefined } });
    try {
      assert.equal((await api(afterRotation.url, TOKEN_B)("GET", "/tools")).status, 200);
      assert.equal((await api(afterRotation.url, TOKEN)("GET", "/tools")).status, 401);
    } finally {
      await afterRotation.stop();
    }
  });
});

describe("GET /status cache", function () {
  this.timeout(60_000);

  it("serves one body per sample with Content-Length and ETag, 304 on If-None-Match, and a new body after the next sample", async () => {
    const dtma = await startDtma({ statusRefreshMs: 200 });
    try {
      const call = api(dtma.url);
      let first = await call("GET", "/status");
      // The first background sample may still be running: wait for one with Docker in it.
      for (let i = 0; i < 200 && first.json.docker.reachable !== true; i++) {
        await new Promise((r) => setTimeout(r, 50));
        first = await call("GET", "/status");
      }
      assert.equal(first.status, 200);
      assert.equal(first.headers.get("content-type"), "application/json; charset=utf-8");
      assert.equal(Number(first.headers.get("content-length")), Buffer.byteLength(first.text));
      const etag = first.headers.get("etag");
      assert.match(etag ?? "", /^"[A-Za-z0-9_-]+"$/);
      // Uptime is as of the sample: the body and its ETag go together.
      assert.equal(typeof first.json.uptime_seconds, "number");
      assert.ok(!Number.isNaN(Date.parse(first.json.sampled_at)));

      // Eventually a later sample replaces the body (and the ETag); until then, 304s.
      let next = first;
      for (let i = 0; i < 400 && next.headers.get("etag") === etag; i++) {
        const conditional = await call("GET", "/status", undefined, {
          "if-none-match": etag!,
        });
        if (conditional.status === 304) {
          assert.equal(conditional.text, "");
          assert.equal(conditional.headers.get("etag"), etag);
        } else {
          assert.equal(conditional.status, 200);
        }
        await new Promise((r) => setTimeout(r, 50));
        next = await call("GET", "/status");
      }
      assert.notEqual(next.headers.get("etag"), etag, "a new sample replaced the body");
      assert.notEqual(next.json.sampled_at, first.json.sampled_at);
      assert.equal(Number(next.headers.get("content-length")), Buffer.byteLength(next.text));
      assert.equal(
        (await call("GET", "/status", undefined, { "if-none-match": etag! })).status,
        200,
        "an old ETag gets the new body",
      );
      // Without a token there is no cached body either.
      assert.equal((await api(dtma.url, null)("GET", "/status")).status, 401);
    } finally {
      await dtma.stop();
    }
  });
});
