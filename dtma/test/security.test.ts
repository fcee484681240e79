/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-assignment -- tests read the JSON of the API loosely */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { Writable } from "node:stream";
import fc from "fast-check";
import { rawHttp, rawRequest } from "../../servicekit/test/rawHttp";
import { createLogger } from "../src/log";
import { RegistryAllowList } from "../src/tools/image";
import type { Running } from "./helpers";
import { DockerEngine } from "../src/docker/engine";
import {
  api,
  BUSYBOX,
  cleanup,
  exec,
  httpTool,
  inspect,
  NETWORK,
  requireImages,
  sleepTool,
  SCOPE,
  SOCKET,
  startDtma,
  TOKEN,
} from "./helpers";

// Issue 13, replayed against the DTMA: each case as the attacker or the misbehaving tool sent
// it, with the answer it must get now.

/** A DTMA whose log lines the test reads. */
async function loggedDtma(
  overrides: Parameters<typeof startDtma>[0] = {},
): Promise<{ dtma: Running; lines: { level: number; msg: string }[] }> {
  const lines: { level: number; msg: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString("utf8").split("\n"))
        if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
      done();
    },
  });
  const dtma = await startDtma(
    { logLevel: "info", ...overrides },
    { log: createLogger("info", destination) },
  );
  return { dtma, lines };
}

const bearer = (scheme = "Bearer") => `Authorization: ${scheme} ${TOKEN}`;

/** A registry on loopback that answers every request with `status` and an HTML page. */
async function pageRegistry(status: number, page: string) {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(status, { "content-type": "text/html" }).end(page);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { port, requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A registry on loopback that accepts connections and never answers. */
async function silentRegistry() {
  const sockets = new Set<Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    connections: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const stdio = { transport: { type: "stdio" }, network: "none" };

describe("security: issue 13 replayed against the DTMA", function () {
  this.timeout(120_000);

  describe("the HTTP surface (items 5 and 12)", () => {
    let dtma: Running;
    let lines: { level: number; msg: string }[];
    let port: number;

    before(async () => {
      ({ dtma, lines } = await loggedDtma());
      port = Number(new URL(dtma.url).port);
    });
    after(() => dtma?.stop());

    it("raw request targets like `GET //` or `GET http://x:99999/tools` get a 4xx before auth, and no error is logged", async () => {
      for (const target of ["//", "http://x:99999/tools", "//x/tools", "http://", "*", "tools"]) {
        for (const auth of [[], [bearer()]]) {
          const res = await rawHttp(port, rawRequest("GET", target, auth));
          assert.ok(res.status >= 400 && res.status < 500, `GET ${target}: ${res.status}`);
        }
      }
      assert.deepEqual(
        lines.filter((l) => l.level >= 50),
        [],
      );
    });

    it("no anonymous request target gives a 5xx or logs an error (fast-check)", async () => {
      const unit = fc.constantFrom(..."/:?#%@[]!$&'()*+,;=.-_~atoolsX019".split(""));
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.string({ unit, maxLength: 40 }),
            fc.string({ unit, maxLength: 30 }).map((s) => `http://${s}`),
            fc.string({ unit, maxLength: 30 }).map((s) => `/tools/${s}`),
          ),
          async (target) => {
            const res = await rawHttp(port, rawRequest("GET", target));
            assert.ok(res.status === 0 || res.status < 500, `GET ${target}: ${res.status}`);
          },
        ),
        { numRuns: 200 },
      );
      assert.deepEqual(
        lines.filter((l) => l.level >= 50),
        [],
      );
    });

    it("HEAD /health is answered like GET, without a token and without a body", async () => {
      const res = await rawHttp(port, rawRequest("HEAD", "/health"));
      assert.equal(res.status, 200);
      assert.equal(res.body, "");
      assert.equal(res.headers["content-length"], String('{"status":"ok"}'.length));
      // Every other route still wants the token for HEAD too.
      assert.equal((await rawHttp(port, rawRequest("HEAD", "/tools"))).status, 401);
    });

    it("405 names the allowed methods in Allow", async () => {
      const health = await rawHttp(port, rawRequest("POST", "/health"));
      assert.equal(health.status, 405);
      assert.equal(health.headers.allow, "GET, HEAD");
      const tool = await rawHttp(port, rawRequest("POST", "/tools/x", [bearer()]));
      assert.equal(tool.status, 405);
      assert.equal(tool.headers.allow, "PUT, GET, HEAD, DELETE");
    });

    it("426 carries `Upgrade: mcp-stdio`, with no upgrade or with another protocol", async () => {
      for (const extra of [[], ["Connection: Upgrade", "Upgrade: websocket"]]) {
        const res = await rawHttp(
          port,
          rawRequest("POST", "/tools/x/attach", [bearer(), "Content-Length: 0", ...extra]),
        );
        assert.equal(res.status, 426, extra.join(" "));
        assert.equal(res.headers.upgrade, "mcp-stdio");
      }
    });

    it("bearer schemes are case-insensitive (RFC 9110)", async () => {
      for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
        const res = await rawHttp(port, rawRequest("GET", "/metrics", [bearer(scheme)]));
        assert.equal(res.status, 200, scheme);
      }
    });
  });

  describe("images and registries (items 3 and 6)", () => {
    let dtma: Running;
    let call: ReturnType<typeof api>;
    let notFound: Awaited<ReturnType<typeof pageRegistry>>;
    let forbidden: Awaited<ReturnType<typeof pageRegistry>>;
    let unlisted: Awaited<ReturnType<typeof pageRegistry>>;
    const marker = `SECRET-PAGE-${Math.random().toString(36).slice(2)}`;

    before(async function () {
      await requireImages(this, BUSYBOX);
      notFound = await pageRegistry(404, `<html>${marker}</html>`);
      forbidden = await pageRegistry(403, `<html>${marker}</html>`);
      unlisted = await pageRegistry(200, "<html>internal admin page</html>");
      // The two page registries are listed (as an operator lists a registry on the LAN); the
      // third is not.
      dtma = await startDtma({
        registries: new RegistryAllowList(
          `docker.io,127.0.0.1:${notFound.port},127.0.0.1:${forbidden.port}`,
        ),
      });
      call = api(dtma.url);
    });
    after(async () => {
      await dtma?.stop();
      await cleanup();
      await Promise.all([notFound, forbidden, unlisted].map((r) => r?.close()));
    });

    it("references Docker's grammar rejects are a 400 naming image, before Docker is asked", async () => {
      for (const image of [
        "UPPER/busybox",
        "a..b/x",
        "host:99999999999/x",
        "x:",
        "-x",
        "a/b@sha256:12",
      ]) {
        const res = await call("PUT", "/tools/bad-ref", { image, ...stdio });
        assert.equal(res.status, 400, image);
        assert.equal(res.json.field, "image", image);
      }
    });

    it("a registry not on the allow-list is refused with 400 naming image, and never contacted", async () => {
      for (const image of [
        `127.0.0.1:${unlisted.port}/x/y:1`,
        `localhost:${unlisted.port}/x/y:1`,
        `127.1:${unlisted.port}/x/y:1`,
        `2130706433:${unlisted.port}/x/y:1`,
        "169.254.169.254/latest/meta-data:1",
        "10.0.0.1:5000/x:1",
        "192.168.1.1/x:1",
        "registry.example.com/x:1",
      ]) {
        const res = await call("PUT", "/tools/ssrf", { image, ...stdio, pull: "always" });
        assert.equal(res.status, 400, image);
        assert.equal(res.json.field, "image", image);
        assert.match(res.json.message, /DTMA_REGISTRIES/, image);
      }
      assert.deepEqual(unlisted.requests, []);
    });

    it("a listed registry's error page never comes back; the answer names Docker's error class", async () => {
      const missing = await call("PUT", "/tools/reflect", {
        image: `127.0.0.1:${notFound.port}/x/y:1`,
        ...stdio,
      });
      assert.equal(missing.status, 422);
      assert.equal(missing.json.error, "image_not_found");
      assert.equal(missing.json.docker_error, "not_found");
      const denied = await call("PUT", "/tools/reflect", {
        image: `127.0.0.1:${forbidden.port}/x/y:1`,
        ...stdio,
      });
      assert.equal(denied.status, 502);
      assert.equal(denied.json.error, "pull_failed");
      assert.equal(denied.json.docker_error, "forbidden");
      for (const res of [missing, denied]) assert.doesNotMatch(res.text, new RegExp(marker));
      assert.ok(notFound.requests.length > 0 && forbidden.requests.length > 0, "contacted");
    });
  });

  describe("pulls from a registry that never answers (item 9)", () => {
    let dtma: Running;
    let call: ReturnType<typeof api>;
    let silent: Awaited<ReturnType<typeof silentRegistry>>;

    before(async function () {
      await requireImages(this, BUSYBOX);
      silent = await silentRegistry();
      dtma = await startDtma({
        registries: new RegistryAllowList(`docker.io,127.0.0.1:${silent.port}`),
        pulls: { max: 2, timeoutMs: 60_000 },
      });
      call = api(dtma.url);
    });
    after(async () => {
      await dtma?.stop();
      await silent?.close();
      await cleanup();
    });

    it("40 stuck pulls leave the API answering: GET /tools comes back while every pull is still held", async () => {
      let settled = 0;
      const deploys = Array.from({ length: 40 }, (_, i) =>
        call("PUT", `/tools/stuck-${i}`, {
          image: `127.0.0.1:${silent.port}/x/s${i}:1`,
          ...stdio,
        }).finally(() => (settled += 1)),
      );
      // Wait until the daemon holds every pull it was given: its connections stop growing.
      let seen = -1;
      for (
        let i = 0;
        i < 30 && (silent.connections() === 0 || silent.connections() !== seen);
        i++
      ) {
        seen = silent.connections();
        await new Promise((r) => setTimeout(r, 1000));
      }
      const tools = await Promise.race([
        call("GET", "/tools"),
        new Promise<null>((r) => setTimeout(() => r(null), 20_000)),
      ]);
      assert.ok(tools, "GET /tools did not answer within 20 s while the pulls were held");
      assert.equal(tools.status, 200);
      assert.equal(settled, 0, "no pull may have finished: the registry never answered");
      await silent.close();
      const answers = await Promise.all(deploys);
      for (const a of answers) assert.ok(a.status === 502 || a.status === 504, String(a.status));
    });

    it("a pull that outlives DTMA_PULL_TIMEOUT_SECONDS is 504 pull_timeout, and frees its slot", async () => {
      const again = await silentRegistry();
      const quick = await startDtma({
        registries: new RegistryAllowList(`127.0.0.1:${again.port}`),
        pulls: { max: 1, timeoutMs: 1500 },
      });
      try {
        const q = api(quick.url);
        const first = await q("PUT", "/tools/slow-a", {
          image: `127.0.0.1:${again.port}/x/a:1`,
          ...stdio,
        });
        assert.equal(first.status, 504);
        assert.equal(first.json.error, "pull_timeout");
        assert.equal(first.json.docker_error, "deadline");
        const second = await q("PUT", "/tools/slow-b", {
          image: `127.0.0.1:${again.port}/x/b:1`,
          ...stdio,
        });
        assert.equal(second.status, 504, "the slot of the first pull was freed");
      } finally {
        await quick.stop();
        await again.close();
      }
    });
  });

  describe("a tool's logs (item 2)", () => {
    let dtma: Running;
    let call: ReturnType<typeof api>;
    const LINE = 60_000;
    const LINES = 400;

    before(async function () {
      await requireImages(this, BUSYBOX);
      dtma = await startDtma({
        logs: { maxBytes: 1024 * 1024, maxLineBytes: 16_384, maxReads: 2 },
      });
      call = api(dtma.url);
      // 400 lines of 60 kB each (24 MB), the last one numbered, then quiet.
      const script = `x=$(head -c ${LINE} /dev/zero | tr '\\0' x); i=0; while [ $i -lt ${LINES} ]; do echo "$i $x"; i=$((i+1)); done; echo last-line; sleep 3600`;
      const res = await call("PUT", "/tools/noisy", {
        image: BUSYBOX,
        command: ["sh", "-c", script],
        transport: { type: "http", port: 8080 },
        network: "none",
      });
      assert.equal(res.status, 201, res.text);
      for (let i = 0; i < 100; i++) {
        const tail = await call("GET", "/tools/noisy/logs?tail=1");
        if (tail.json?.entries?.[0]?.text === "last-line") break;
        await new Promise((r) => setTimeout(r, 200));
      }
    });
    after(async () => {
      await dtma?.stop();
      await cleanup();
    });

    it("tail=10000 of long lines is bounded in bytes and lines, keeps the newest lines, and says it was cut", async () => {
      const res = await call("GET", "/tools/noisy/logs?tail=10000");
      assert.equal(res.status, 200);
      assert.ok(res.text.length <= 1024 * 1024 + 64 * 1024, `answer of ${res.text.length} bytes`);
      assert.equal(res.json.truncated, true);
      const entries = res.json.entries as { text: string }[];
      assert.ok(entries.length > 0);
      for (const e of entries) assert.ok(Buffer.byteLength(e.text) <= 16_384, "line cut");
      assert.equal(entries.at(-1)!.text, "last-line", "the newest line is kept");
      assert.match(entries.at(-2)!.text, new RegExp(`^${LINES - 1} x+$`));
    });

    it("concurrent reads beyond DTMA_MAX_LOG_READS get 429 with Retry-After; later reads succeed", async () => {
      const answers = await Promise.all(
        Array.from({ length: 10 }, () => call("GET", "/tools/noisy/logs?tail=10000")),
      );
      const statuses = answers.map((a) => a.status);
      assert.ok(
        statuses.every((s) => s === 200 || s === 429),
        statuses.join(","),
      );
      const refused = answers.filter((a) => a.status === 429);
      assert.ok(refused.length > 0, `no read was refused: ${statuses.join(",")}`);
      for (const r of refused) {
        assert.equal(r.json.error, "too_many_log_reads");
        assert.ok(Number(r.headers.get("retry-after")) >= 1);
      }
      assert.equal((await call("GET", "/tools/noisy/logs?tail=5")).status, 200);
    });
  });

  describe("spec_hash and secrets (item 8)", () => {
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

    const spec = (secret: string) => ({
      image: BUSYBOX,
      command: ["sleep", "3600"],
      ...stdio,
      env: { MODE: "x" },
      secrets: { API_KEY: secret },
    });

    it("the hash cannot confirm a guessed secret: it is the same for every value, and a new value still replaces the container", async () => {
      const first = await call("PUT", "/tools/hashed", spec("alpha-secret-1"));
      assert.equal(first.status, 201);
      const same = await call("PUT", "/tools/hashed", spec("alpha-secret-1"));
      assert.equal(same.json.changed, false);
      assert.equal(same.json.container_id, first.json.container_id);
      const rotated = await call("PUT", "/tools/hashed", spec("beta-secret-2"));
      assert.equal(rotated.status, 200);
      assert.equal(rotated.json.changed, true, "a changed secret is a change");
      assert.notEqual(rotated.json.container_id, first.json.container_id);
      assert.equal(rotated.json.spec_hash, first.json.spec_hash, "the hash holds no secret value");
      const c = await inspect(rotated.json.container_id as string);
      assert.ok((c.Config.Env as string[]).includes("API_KEY=beta-secret-2"));
      assert.equal(c.Config.Labels["agentopia.spec-hash"], first.json.spec_hash);
      // A plain setting is still part of the hash.
      const env = await call("PUT", "/tools/hashed", {
        ...spec("beta-secret-2"),
        env: { MODE: "y" },
      });
      assert.notEqual(env.json.spec_hash, first.json.spec_hash);
    });
  });

  describe("waits share one watcher; health sees a stalled Docker (item 9)", () => {
    let dtma: Running;
    let call: ReturnType<typeof api>;
    let requests = 0;

    /** The real engine, counting every request the DTMA sends the daemon. */
    class CountingEngine extends DockerEngine {
      override open(...args: Parameters<DockerEngine["open"]>) {
        requests += 1;
        return super.open(...args);
      }
    }

    before(async function () {
      await requireImages(this, BUSYBOX);
      dtma = await startDtma({}, { docker: new CountingEngine(SOCKET) });
      call = api(dtma.url);
    });
    after(async () => {
      await dtma?.stop();
      await cleanup();
    });

    it("1,000 concurrent waits cost Docker a handful of requests, not one per wait every 200 ms, and all see the change", async () => {
      assert.equal(
        (await call("PUT", "/tools/waited", sleepTool({ network: "none" }))).status,
        201,
      );
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1000 });
      const wait = () =>
        new Promise<{ status: number; json: any }>((resolve, reject) => {
          http
            .get(
              `${dtma.url}/tools/waited/wait?state=exited&timeout=30`,
              { agent, headers: { authorization: `Bearer ${TOKEN}` } },
              (res) => {
                let text = "";
                res.on("data", (c: Buffer) => (text += c.toString()));
                res.on("end", () =>
                  resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }),
                );
              },
            )
            .on("error", reject);
        });
      const waits = Array.from({ length: 1000 }, wait);
      // Every wait is in; then two seconds of nothing happening.
      await new Promise((r) => setTimeout(r, 3000));
      const before = requests;
      await new Promise((r) => setTimeout(r, 2000));
      const idle = requests - before;
      assert.ok(idle < 50, `${idle} Docker requests in 2 s of 1,000 idle waits`);
      assert.equal((await call("POST", "/tools/waited/stop")).status, 200);
      const answers = await Promise.all(waits);
      agent.destroy();
      assert.ok(
        answers.every(
          (a) => a.status === 200 && a.json.reached === true && a.json.tool.state === "exited",
        ),
      );
    });

    it("a wait for removal answers when the tool goes, and an unknown tool is still 404", async () => {
      assert.equal((await call("PUT", "/tools/goner", sleepTool({ network: "none" }))).status, 201);
      const waiting = call("GET", "/tools/goner/wait?state=removed&timeout=30");
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await call("DELETE", "/tools/goner")).status, 204);
      const res = await waiting;
      assert.equal(res.json.reached, true);
      assert.equal(res.json.tool, null);
      assert.equal((await call("GET", "/tools/nobody/wait?state=running&timeout=1")).status, 404);
    });

    it("/health turns 503 when the Docker connection stalls, and back to 200 when it answers", async () => {
      const stand = await standInDocker();
      const probed = await startDtma(
        { dockerSocket: stand.path },
        { dockerProbe: { intervalMs: 100, timeoutMs: 300 } },
      );
      try {
        const health = api(probed.url, null);
        const until = async (status: number) => {
          for (let i = 0; i < 100; i++) {
            const res = await health("GET", "/health");
            if (res.status === status) return res;
            await new Promise((r) => setTimeout(r, 100));
          }
          assert.fail(`/health never answered ${status}`);
        };
        assert.deepEqual((await until(200)).json, { status: "ok" });
        stand.stall(true);
        const down = await until(503);
        assert.equal(down.json.status, "unavailable");
        assert.equal(down.json.docker, "stalled");
        stand.stall(false);
        await until(200);
      } finally {
        await probed.stop();
        await stand.close();
      }
    });
  });

  describe("the sandbox (item 7)", () => {
    let dtma: Running;
    let call: ReturnType<typeof api>;

    before(async function () {
      await requireImages(this, BUSYBOX);
      dtma = await startDtma({
        caps: { memoryMb: 256, cpus: 1, pids: 256, lanes: 8, rootTools: 1 },
      });
      call = api(dtma.url);
    });
    after(async () => {
      await dtma?.stop();
      await cleanup();
    });

    const sh = async (id: string, script: string) =>
      (
        await exec("docker", ["exec", id, "/bin/busybox", "sh", "-c", script]).catch(
          (e: { stdout: string }) => e,
        )
      ).stdout;

    /**
     * Every writable mount is noexec, and a binary copied anywhere writable does not run (named
     * `true`, busybox runs that applet: exit 0 when it ran).
     */
    async function assertNothingWritableRuns(id: string) {
      const mounts = (await sh(id, "cat /proc/mounts")).trim().split("\n");
      for (const m of mounts) {
        const [, where, , opts = ""] = m.split(" ");
        const flags = opts.split(",");
        if (flags.includes("rw"))
          assert.ok(flags.includes("noexec"), `${where} is writable and executable`);
      }
      const ran = await sh(
        id,
        "for d in /tmp /dev /dev/shm /run /var/tmp /; do cp /bin/busybox $d/true 2>/dev/null && $d/true 2>/dev/null && echo RAN-$d; done; true",
      );
      assert.equal(ran.trim(), "");
    }

    it("an image without a user runs as 65534, in a private cgroup namespace, and nothing writable executes", async () => {
      const res = await call("PUT", "/tools/plain", sleepTool({ network: "none" }));
      assert.equal(res.status, 201, res.text);
      const id = res.json.container_id as string;
      const c = await inspect(id);
      assert.equal(c.Config.User, "65534:65534");
      assert.equal(c.HostConfig.CgroupnsMode, "private");
      assert.equal((await sh(id, "id -u")).trim(), "65534");
      assert.equal(res.json.user, "65534:65534");
      for (const line of (await sh(id, "cat /proc/self/cgroup")).trim().split("\n"))
        assert.match(line, /:\/$/, `the tool sees the host's cgroup path: ${line}`);
      await assertNothingWritableRuns(id);
    });

    it("running as root is an explicit opt-out, capped by DTMA_MAX_ROOT_TOOLS, and still nothing writable executes", async () => {
      const root = await call(
        "PUT",
        "/tools/rooted",
        sleepTool({ network: "none", run_as_root: true }),
      );
      assert.equal(root.status, 201, root.text);
      assert.equal((await sh(root.json.container_id as string, "id -u")).trim(), "0");
      await assertNothingWritableRuns(root.json.container_id as string);
      const second = await call(
        "PUT",
        "/tools/rooted-2",
        sleepTool({ network: "none", run_as_root: true }),
      );
      assert.equal(second.status, 400);
      assert.equal(second.json.field, "run_as_root");
      // An explicit non-root user, and uid 0 refused as a user.
      const uid = await call(
        "PUT",
        "/tools/uid",
        sleepTool({ network: "none", user: "1234:1234" }),
      );
      assert.equal(uid.status, 201, uid.text);
      assert.equal((await sh(uid.json.container_id as string, "id -u")).trim(), "1234");
      for (const user of ["0", "0:0", "root", "1:x", ""]) {
        const bad = await call("PUT", "/tools/uid-bad", sleepTool({ network: "none", user }));
        assert.equal(bad.status, 400, user);
        assert.equal(bad.json.field, "user", user);
      }
    });
  });

  describe("each tool on its own network, shared with the gateway only (item 4)", () => {
    let dtma: Running;
    let call: ReturnType<typeof api>;
    const gateway = `dtma-test-gateway-${SCOPE}`;
    const POOL = "10.213.0.0/24";

    const startGateway = () =>
      exec("docker", [
        "run",
        "-d",
        "--name",
        gateway,
        "--label",
        `agentopia.dtma-scope=${SCOPE}`,
        BUSYBOX,
        "sleep",
        "3600",
      ]);
    const networksOf = async (id: string) =>
      Object.keys((await inspect(id)).NetworkSettings.Networks);
    /** An HTTP GET from inside a container (busybox nc), the answer, or "" when it could not connect. */
    const fetchFrom = async (id: string, host: string, port = 8080) =>
      (
        await exec("docker", [
          "exec",
          id,
          "/bin/busybox",
          "sh",
          "-c",
          `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port}`,
        ]).catch(() => ({ stdout: "" }))
      ).stdout;

    before(async function () {
      await requireImages(this, BUSYBOX);
      await startGateway();
      dtma = await startDtma({ gateway, toolSubnets: { cidr: POOL, prefixLength: 28 } });
      call = api(dtma.url);
    });
    after(async () => {
      await dtma?.stop();
      await cleanup();
    });

    const web = (text: string) =>
      httpTool({
        command: [
          "sh",
          "-c",
          `mkdir -p /tmp/w && echo ${text} > /tmp/w/index.html && httpd -f -p 8080 -h /tmp/w`,
        ],
      });

    it("a tool reaches no other tool; the gateway reaches both; subnets come from the pool", async () => {
      const a = await call("PUT", "/tools/iso-a", web("from-a"));
      const b = await call("PUT", "/tools/iso-b", web("from-b"));
      assert.equal(a.status, 201, a.text);
      assert.equal(b.status, 201, b.text);
      const [netA] = await networksOf(a.json.container_id as string);
      const [netB] = await networksOf(b.json.container_id as string);
      assert.notEqual(netA, netB);
      for (const [net, subnet] of [
        [netA, "10.213.0.0/28"],
        [netB, "10.213.0.16/28"],
      ]) {
        const n = JSON.parse((await exec("docker", ["network", "inspect", net])).stdout)[0];
        assert.equal(n.IPAM.Config[0].Subnet, subnet);
      }
      assert.deepEqual((await networksOf(gateway)).sort(), ["bridge", netA, netB].sort());
      const ipB = (await inspect(b.json.container_id as string)).NetworkSettings.Networks[netB]
        .IPAddress;
      // The gateway reaches each tool by its name; tool A reaches neither B's name nor its address.
      assert.match(await fetchFrom(gateway, "iso-a"), /from-a/);
      assert.match(await fetchFrom(gateway, "iso-b"), /from-b/);
      assert.equal(await fetchFrom(a.json.container_id as string, "iso-b"), "");
      assert.equal(await fetchFrom(a.json.container_id as string, ipB as string), "");
      assert.match(await fetchFrom(a.json.container_id as string, "127.0.0.1"), /from-a/);
    });

    it("a recreated gateway is connected again; a removed tool takes its network", async () => {
      await exec("docker", ["rm", "-f", gateway]);
      await startGateway();
      await dtma.app.tools.networks.reconcile();
      assert.equal((await networksOf(gateway)).length, 3);
      const net = (
        await networksOf((await call("GET", "/tools/iso-b")).json.container_id as string)
      )[0];
      assert.equal((await call("DELETE", "/tools/iso-b")).status, 204);
      await assert.rejects(exec("docker", ["network", "inspect", net]));
      assert.deepEqual((await networksOf(gateway)).sort(), ["bridge", `${NETWORK}.iso-a`]);
    });
  });
});

/** A stand-in for the Docker socket that answers /_ping (or nothing at all, once stalled). */
async function standInDocker() {
  const path = `/tmp/dtma-standin-${process.pid}-${Date.now()}.sock`;
  let stalled = false;
  const held = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    if (stalled) {
      held.add(res);
      return;
    }
    if (req.url?.endsWith("/_ping")) return void res.writeHead(200).end("OK");
    res.writeHead(500, { "content-type": "application/json" }).end('{"message":"stand-in"}');
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    stall(on: boolean) {
      stalled = on;
      if (!on) for (const r of held) r.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
