/**
 * The pack as the Pulumi CLI runs it: `policies/` loaded by the SDK's policy-pack runner (its
 * ts-node, type-checked), answering the analyzer gRPC protocol the engine speaks. Also shows
 * why secretness is checked elsewhere: a secret input reaches the policies as plaintext.
 */
import * as grpc from "@grpc/grpc-js";
import { AnalyzerClient } from "@pulumi/pulumi/proto/analyzer_grpc_pb";
import {
  AnalyzeRequest,
  AnalyzerResourceOptions,
  type AnalyzeResponse,
} from "@pulumi/pulumi/proto/analyzer_pb";
import * as pulumi from "@pulumi/pulumi";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { policies } from "../policies/all";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Struct } = require("google-protobuf/google/protobuf/struct_pb") as {
  Struct: { fromJavaScript(value: Record<string, unknown>): unknown };
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Empty } = require("google-protobuf/google/protobuf/empty_pb") as {
  Empty: new () => unknown;
};

const ROOT = join(__dirname, "..");

interface Info {
  getName(): string;
  getPoliciesList(): { getName(): string }[];
}

describe("policies: the pack under Pulumi's policy-pack runner", function () {
  this.timeout(120_000);
  let pack: ChildProcess;
  let client: AnalyzerClient;

  before(async () => {
    pack = spawn(
      process.execPath,
      [join(ROOT, "node_modules/@pulumi/pulumi/cmd/run-policy-pack"), "127.0.0.1:1", "."],
      { cwd: join(ROOT, "policies"), stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    pack.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const port = await new Promise<string>((resolve, reject) => {
      pack.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()));
      pack.once("exit", (code) => reject(new Error(`the pack exited with ${code}: ${stderr}`)));
    });
    assert.match(port, /^\d+$/);
    client = new AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  after(() => {
    client?.close();
    pack?.kill();
  });

  function analyze(type: string, name: string, props: Record<string, unknown>): Promise<string[]> {
    const req = new AnalyzeRequest();
    req.setType(type);
    req.setName(name);
    req.setUrn(`urn:pulumi:dev::agentopia-toolboxes::${type}::${name}`);
    req.setProperties(
      Struct.fromJavaScript(props) as Parameters<AnalyzeRequest["setProperties"]>[0],
    );
    req.setOptions(new AnalyzerResourceOptions());
    return new Promise((resolve, reject) =>
      client.analyze(req, (err: grpc.ServiceError | null, res?: AnalyzeResponse) =>
        err
          ? reject(err)
          : resolve(
              res!.getDiagnosticsList().map((d) => `${d.getPolicyname()}: ${d.getMessage()}`),
            ),
      ),
    );
  }

  it("announces every policy of the pack", async () => {
    const info = await new Promise<Info>((resolve, reject) =>
      (
        client as unknown as {
          getAnalyzerInfo(r: unknown, cb: (e: Error | null, i: Info) => void): void;
        }
      ).getAnalyzerInfo(new Empty(), (e, i) => (e ? reject(e) : resolve(i))),
    );
    assert.equal(info.getName(), "agentopia-toolboxes");
    assert.deepEqual(
      info.getPoliciesList().map((p) => p.getName()),
      policies.map((p) => p.name),
    );
  });

  it("reports a violation and passes a clean resource", async () => {
    const firewall = "digitalocean:index/firewall:Firewall";
    const open = await analyze(firewall, "fw", {
      inboundRules: [{ protocol: "tcp", portRange: "22", sourceAddresses: ["0.0.0.0/0"] }],
    });
    assert.equal(open.length, 1);
    assert.match(open[0], /^firewall-ssh-private: .*22\/tcp to 0\.0\.0\.0\/0/s);
    const closed = await analyze(firewall, "fw", {
      inboundRules: [{ protocol: "tcp", portRange: "22", sourceAddresses: ["203.0.113.0/28"] }],
    });
    assert.deepEqual(closed, []);
  });

  it("hands policies secret inputs as plaintext (so secretness is checked under mocks)", async () => {
    const secret = {
      [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
      value: ["DIGITALOCEAN_TOKEN=x"],
    };
    const found = await analyze("docker:index/container:Container", "c", {
      envs: secret,
      restart: "unless-stopped",
      logDriver: "local",
      memory: 128,
    });
    assert.deepEqual(
      found.map((f) => f.split(":")[0]),
      ["container-no-fleet-credentials"],
    );
  });
});
