/**
 * The rendered firewall script, run for real with iptables in network namespaces this test
 * makes: a "host" with two bridges named like Docker's (br-*), a tool, the DTMA, a backend and
 * a stand-in for the internet (TEST-NET-1). Traffic never leaves these namespaces.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { renderCloudConfig } from "../cloud-init";
import { requireCommand, run, sshKeygenEd25519, tempDir } from "./helpers/shell";

const P = `tbxfw${process.pid}`;
const NS = { host: `${P}-h`, tool: `${P}-t`, dtma: `${P}-d`, backend: `${P}-b`, wan: `${P}-w` };

/** Builds the topology; every command is echoed into the failure message if one fails. */
const TOPOLOGY = `set -euo pipefail
H=${NS.host}
for ns in ${Object.values(NS).join(" ")}; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip netns exec "$H" sysctl -qw net.ipv4.ip_forward=1
bridge() { ip -n "$H" link add "$1" type bridge; ip -n "$H" addr add "$2" dev "$1"; ip -n "$H" link set "$1" up; }
bridge br-tools 172.31.0.1/16
bridge br-control 172.30.0.1/24
# attach NS BRIDGE ADDRESS GATEWAY
attach() {
  ip -n "$H" link add "v$1" type veth peer name eth0 netns "$1"
  ip -n "$H" link set "v$1" master "$2" up
  ip -n "$1" addr add "$3" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" route add default via "$4"
}
attach ${NS.tool} br-tools 172.31.0.2/16 172.31.0.1
attach ${NS.dtma} br-control 172.30.0.2/24 172.30.0.1
attach ${NS.backend} br-control 172.30.0.3/24 172.30.0.1
ip -n "$H" link add vwan type veth peer name eth0 netns ${NS.wan}
ip -n "$H" addr add 192.0.2.1/24 dev vwan
ip -n "$H" link set vwan up
ip -n ${NS.wan} addr add 192.0.2.2/24 dev eth0
ip -n ${NS.wan} link set eth0 up
ip -n ${NS.wan} route add default via 192.0.2.1
`;

const LISTENER = `const net = require("node:net");
const ports = process.argv.slice(1).map(Number);
let open = 0;
for (const port of ports) {
  net.createServer((s) => s.end()).listen(port, "0.0.0.0", () => {
    if (++open === ports.length) console.log("ready");
  });
}`;

function listen(ns: string, ports: number[]): Promise<ChildProcess> {
  const child = spawn(
    "ip",
    ["netns", "exec", ns, process.execPath, "-e", LISTENER, ...ports.map(String)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`listener in ${ns} exited with ${code}`)));
    child.stdout.once("data", () => resolve(child));
  });
}

/** Whether a TCP connection from `ns` to address:port is accepted (a REJECT refuses at once). */
function connects(ns: string, address: string, port: number): boolean {
  const result = run("ip", [
    "netns",
    "exec",
    ns,
    "timeout",
    "5",
    "bash",
    "-c",
    `exec 3<>/dev/tcp/${address}/${port}`,
  ]);
  return result.status === 0;
}

/** [from, to address, port, allowed once the firewall is up, why] */
const PATHS: [string, string, number, boolean, string][] = [
  [NS.tool, "172.30.0.2", 30000, false, "tool -> DTMA"],
  [NS.tool, "172.30.0.2", 3000, false, "tool -> control network"],
  [NS.tool, "172.31.0.1", 2222, false, "tool -> host"],
  [NS.tool, "192.0.2.2", 30000, false, "tool -> DTMA port anywhere"],
  [NS.tool, "192.0.2.2", 8080, true, "tool -> internet"],
  [NS.dtma, "172.30.0.1", 2222, false, "control container -> host"],
  [NS.dtma, "192.0.2.2", 8080, true, "DTMA -> internet (heartbeats)"],
  [NS.backend, "172.30.0.2", 30000, true, "backend -> DTMA"],
  [NS.wan, "172.30.0.2", 30000, false, "internet -> DTMA (as if published)"],
];

describe("cloud-init firewall script on real iptables", function () {
  const listeners: ChildProcess[] = [];
  const dir = tempDir("cloud-init-fw-");
  const script = join(dir.path, "toolbox-firewall");
  const fw = (action: string) => run("ip", ["netns", "exec", NS.host, "bash", script, action]);
  const save = () => run("ip", ["netns", "exec", NS.host, "iptables-save"]).stdout;

  before(async function () {
    requireCommand("iptables", "iptables");
    requireCommand("ip", "iproute2");
    const keys = sshKeygenEd25519(dir.path, "host");
    const config = parse(
      renderCloudConfig({ hostKey: keys, authorizedKeys: [keys.publicKeyOpenssh] }),
    ) as { write_files: { path: string; content: string }[] };
    const file = config.write_files.find((f) => f.path === "/usr/local/sbin/toolbox-firewall");
    assert.ok(file);
    writeFileSync(script, file.content);

    const topology = run("bash", ["-c", TOPOLOGY]);
    assert.equal(topology.status, 0, `network namespaces (needs root): ${topology.stderr}`);
    listeners.push(
      await listen(NS.host, [2222]),
      await listen(NS.dtma, [30000, 3000]),
      await listen(NS.wan, [30000, 8080]),
    );
  });

  after(function () {
    for (const child of listeners) child.kill();
    for (const ns of Object.values(NS)) run("ip", ["netns", "del", ns]);
    dir.remove();
  });

  it("every path is open before the firewall, so the checks below can fail", function () {
    for (const [from, address, port, , why] of PATHS) {
      assert.ok(connects(from, address, port), `${why} should connect without the firewall`);
    }
  });

  it("apply blocks what must be blocked and nothing else", function () {
    const result = fw("apply");
    assert.equal(result.status, 0, result.stderr);
    for (const [from, address, port, allowed, why] of PATHS) {
      assert.equal(connects(from, address, port), allowed, why);
    }
  });

  it("blocks the metadata address (checked as a rule: no traffic is sent there)", function () {
    const check = run("ip", [
      "netns",
      "exec",
      NS.host,
      "iptables",
      "-C",
      "DOCKER-USER",
      "-d",
      "169.254.0.0/16",
      "-j",
      "REJECT",
    ]);
    assert.equal(check.status, 0, check.stderr);
  });

  it("is idempotent and verify passes", function () {
    const before = save().replace(/^#.*\n/gm, "");
    assert.equal(fw("apply").status, 0);
    assert.equal(save().replace(/^#.*\n/gm, ""), before);
    assert.equal((before.match(/^-A INPUT -j TOOLBOX-INPUT$/gm) ?? []).length, 1);
    assert.equal((before.match(/^-A FORWARD -j DOCKER-USER$/gm) ?? []).length, 1);
    const verify = fw("verify");
    assert.equal(verify.status, 0, verify.stderr);
  });

  it("verify notices rules lost to a Docker restart, and apply restores them", function () {
    const wipe = run("ip", [
      "netns",
      "exec",
      NS.host,
      "bash",
      "-c",
      // What a daemon rewriting its chains could leave: an empty DOCKER-USER and another jump first.
      "iptables -F DOCKER-USER && iptables -A DOCKER-USER -j RETURN && iptables -N DOCKER-FORWARD && iptables -I FORWARD 1 -j DOCKER-FORWARD",
    ]);
    assert.equal(wipe.status, 0, wipe.stderr);
    assert.ok(connects(NS.tool, "172.30.0.2", 30000), "the wipe opened the DTMA to tools");
    const verify = fw("verify");
    assert.notEqual(verify.status, 0);
    assert.match(verify.stderr, /toolbox-firewall: /);

    assert.equal(fw("apply").status, 0);
    assert.equal(fw("verify").status, 0);
    for (const [from, address, port, allowed, why] of PATHS) {
      assert.equal(connects(from, address, port), allowed, why);
    }
  });

  it("rejects an unknown action", function () {
    const result = fw("flush");
    assert.equal(result.status, 2);
    assert.match(result.stderr, /usage:/);
  });
});
