import assert from "node:assert/strict";
import { loadConfig } from "../src/config";
import { containerBody } from "../src/docker/sandbox";
import { parseSpec } from "../src/tools/spec";

const caps = { memoryMb: 256, cpus: 1, pids: 256, lanes: 8 };
const env = {
  DTMA_BEARER_TOKEN: "t".repeat(40),
  AGENTOPIA_API_BASE_URL: "https://api.example.test/v1",
};

describe("the toolbox contract in the DTMA (issue 9)", () => {
  it("tool containers carry the account label like the resident containers (DTMA_ACCOUNT_ID)", () => {
    const account = "7d1f6a2e-6a39-4a38-9c1e-2b8f0f0e1a11";
    assert.equal(loadConfig({ ...env, DTMA_ACCOUNT_ID: account }).account, account);
    assert.equal(loadConfig(env).account, undefined);
    assert.throws(() => loadConfig({ ...env, DTMA_ACCOUNT_ID: "Not An Id" }), /DTMA_ACCOUNT_ID/);
    const input = {
      name: "echo",
      scope: "default",
      spec: parseSpec({ image: "ghcr.io/org/echo:1", transport: { type: "stdio" } }, caps),
      hash: "h",
      resources: { memory_mb: 64, cpus: 1, pids: 64 },
      toolNetwork: "tools",
    };
    const labels = (b: Record<string, unknown>) => b.Labels as Record<string, string>;
    assert.equal(labels(containerBody({ ...input, account }))["agentopia.account"], account);
    assert.equal("agentopia.account" in labels(containerBody(input)), false);
  });
});
