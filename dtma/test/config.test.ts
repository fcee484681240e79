import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../src/config";

const TOKEN = "t".repeat(43);
const base = {
  DTMA_BEARER_TOKEN: TOKEN,
  AGENTOPIA_API_BASE_URL: "https://api.example.test/functions/v1/",
};

describe("config", () => {
  it("applies the documented defaults", () => {
    const c = loadConfig(base);
    assert.equal(c.port, 30000);
    assert.equal(c.apiBaseUrl, "https://api.example.test/functions/v1");
    assert.equal(c.toolNetwork, "toolbox-tools");
    assert.deepEqual(c.caps, { memoryMb: 256, cpus: 1, pids: 256, lanes: 8, rootTools: 0 });
    assert.equal(c.heartbeatIntervalMs, 60_000);
    assert.equal(c.logLevel, "info");
    assert.equal(c.dockerSocket, "/var/run/docker.sock");
    assert.equal(c.tokens.previous, undefined);
    assert.deepEqual(c.pulls, { max: 2, timeoutMs: 300_000 });
    assert.equal(c.registries.refusal({ host: "ghcr.io", port: undefined }), undefined);
  });

  it("treats an empty previous token as none and accepts a real one", () => {
    assert.equal(
      loadConfig({ ...base, DTMA_BEARER_TOKEN_PREVIOUS: "" }).tokens.previous,
      undefined,
    );
    assert.equal(
      loadConfig({ ...base, DTMA_BEARER_TOKEN_PREVIOUS: "p".repeat(40) }).tokens.previous,
      "p".repeat(40),
    );
  });

  const bad: [Record<string, string>, RegExp][] = [
    [
      { AGENTOPIA_API_BASE_URL: base.AGENTOPIA_API_BASE_URL },
      /^invalid configuration: DTMA_BEARER_TOKEN is required$/,
    ],
    [{ DTMA_BEARER_TOKEN: TOKEN }, /^invalid configuration: AGENTOPIA_API_BASE_URL is required$/],
    [{ ...base, DTMA_BEARER_TOKEN: "short" }, /DTMA_BEARER_TOKEN must be at least 32/],
    [
      { ...base, AGENTOPIA_API_BASE_URL: "ftp://x" },
      /AGENTOPIA_API_BASE_URL must be an http\(s\) URL/,
    ],
    [{ ...base, PORT: "70000" }, /^invalid configuration: PORT /],
    [{ ...base, PORT: "3e4" }, /PORT must be a whole number/],
    [{ ...base, DTMA_MAX_TOOL_MEMORY_MB: "-1" }, /DTMA_MAX_TOOL_MEMORY_MB/],
    [{ ...base, DTMA_MAX_TOOL_CPUS: "lots" }, /DTMA_MAX_TOOL_CPUS must be a number/],
    [{ ...base, DTMA_TOOL_NETWORK: "bad name" }, /DTMA_TOOL_NETWORK must be a Docker network name/],
    [{ ...base, DTMA_MAX_LANES_PER_TOOL: "0" }, /DTMA_MAX_LANES_PER_TOOL must be at least 1/],
    [{ ...base, DTMA_MAX_LANES_PER_TOOL: "33" }, /DTMA_MAX_LANES_PER_TOOL must be at most 32/],
    [{ ...base, LOG_LEVEL: "loud" }, /LOG_LEVEL/],
    [{ ...base, DOCKER_SOCKET: "docker.sock" }, /DOCKER_SOCKET must be an absolute path/],
    [{ ...base, DTMA_REGISTRIES: "ghcr.io,not a host" }, /DTMA_REGISTRIES entries are host/],
    [{ ...base, DTMA_REGISTRIES: "*.com*" }, /DTMA_REGISTRIES entries are host/],
    [{ ...base, DTMA_REGISTRIES: "10.0.0.0/33" }, /DTMA_REGISTRIES entries are host/],
    [{ ...base, DTMA_MAX_CONCURRENT_PULLS: "0" }, /DTMA_MAX_CONCURRENT_PULLS must be at least 1/],
    [{ ...base, DTMA_PULL_TIMEOUT_SECONDS: "0" }, /DTMA_PULL_TIMEOUT_SECONDS must be at least 1/],
  ];
  for (const [env, pattern] of bad) {
    it(`stops with one clear line: ${pattern.source}`, () => {
      assert.throws(
        () => loadConfig(env),
        (err: unknown) =>
          err instanceof ConfigError && pattern.test(err.message) && !err.message.includes("\n"),
      );
    });
  }

  it("never echoes a token in its error", () => {
    const secret = "s3cret token with spaces that is long enough";
    assert.throws(
      () => loadConfig({ ...base, DTMA_BEARER_TOKEN: secret }),
      (err: Error) => !err.message.includes(secret),
    );
  });
});
