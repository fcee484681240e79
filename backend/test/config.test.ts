import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ConfigError, loadConfig } from "../src/config";

const token = () => randomBytes(32).toString("base64url");
const base = () => ({
  INTERNAL_API_SECRET: token(),
  AGENT_GATEWAY_TOKEN: token(),
  DTMA_BEARER_TOKEN: token(),
});

describe("backend settings", () => {
  it("has the documented defaults", () => {
    const c = loadConfig(base());
    assert.equal(c.port, 3000);
    assert.equal(c.dtma.url, "http://dtma:30000");
    assert.equal(c.limits.maxBodyBytes, 4 * 1024 * 1024);
    assert.equal(c.limits.requestTimeoutMs, 60_000);
    assert.equal(c.limits.sessionIdleMs, 1_800_000);
    assert.deepEqual(c.allowedOrigins, []);
    assert.equal(c.deployTimeoutMs.default, 60_000);
  });

  it("takes a list of allowed origins", () => {
    const c = loadConfig({
      ...base(),
      MCP_ALLOWED_ORIGINS: "https://app.example.com, http://localhost:5173",
    });
    assert.deepEqual(c.allowedOrigins, ["https://app.example.com", "http://localhost:5173"]);
  });

  const cases: [string, Record<string, string>, RegExp][] = [
    [
      "a missing token",
      { INTERNAL_API_SECRET: "" },
      /^invalid configuration: INTERNAL_API_SECRET is required$/,
    ],
    [
      "a short token",
      { AGENT_GATEWAY_TOKEN: "short" },
      /AGENT_GATEWAY_TOKEN must be at least 32 characters/,
    ],
    ["a port out of range", { PORT: "70000" }, /PORT must be at most 65535/],
    [
      "a DTMA URL that is not http",
      { DTMA_URL: "ftp://dtma" },
      /DTMA_URL must be an http\(s\) URL/,
    ],
    [
      "an origin with a path",
      { MCP_ALLOWED_ORIGINS: "https://a.example/x" },
      /MCP_ALLOWED_ORIGINS must list origins/,
    ],
    [
      "a body cap of words",
      { MCP_MAX_BODY_BYTES: "lots" },
      /MCP_MAX_BODY_BYTES must be a whole number/,
    ],
    [
      "a default deploy timeout over the maximum",
      { DEPLOY_TIMEOUT_SECONDS: "600", DEPLOY_TIMEOUT_MAX_SECONDS: "300" },
      /DEPLOY_TIMEOUT_SECONDS must be at most DEPLOY_TIMEOUT_MAX_SECONDS/,
    ],
    ["a bad log level", { LOG_LEVEL: "loud" }, /LOG_LEVEL must be one of/],
  ];
  for (const [what, env, message] of cases) {
    it(`stops with one line naming the variable for ${what}`, () => {
      assert.throws(
        () => loadConfig({ ...base(), ...env }),
        (err: unknown) =>
          err instanceof ConfigError && message.test(err.message) && !err.message.includes("\n"),
      );
    });
  }

  it("refuses the same value for the control plane's and the agents' token", () => {
    const t = token();
    assert.throws(
      () => loadConfig({ ...base(), INTERNAL_API_SECRET: t, AGENT_GATEWAY_TOKEN: t }),
      /AGENT_GATEWAY_TOKEN must differ from INTERNAL_API_SECRET/,
    );
  });

  it("never puts a token's value in its error", () => {
    const t = "x".repeat(20);
    assert.throws(
      () => loadConfig({ ...base(), DTMA_BEARER_TOKEN: t }),
      (err: unknown) => err instanceof ConfigError && !err.message.includes(t),
    );
  });
});
