import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
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

describe("backend TLS settings", () => {
  // A key pair and a self-signed certificate made with openssl, as an operator would.
  const material = (() => {
    const dir = mkdtempSync(path.join(tmpdir(), "tls-"));
    try {
      const run = (args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
      run([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "2",
        "-subj",
        "/CN=box",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ]);
      run(["genpkey", "-algorithm", "ed25519", "-out", `${dir}/other.pem`]);
      const read = (f: string) => readFileSync(`${dir}/${f}`, "utf8");
      return { cert: read("cert.pem"), key: read("key.pem"), other: read("other.pem") };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();

  it("serves plain HTTP without TLS material", () => {
    assert.equal(loadConfig(base()).tls, undefined);
  });

  it("takes a certificate and its key as PEM or as base64 of PEM", () => {
    const plain = loadConfig({ ...base(), TLS_CERT: material.cert, TLS_KEY: material.key }).tls;
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const encoded = loadConfig({
      ...base(),
      TLS_CERT: b64(material.cert),
      TLS_KEY: b64(material.key),
    }).tls;
    assert.ok(plain?.cert.includes("BEGIN CERTIFICATE"));
    assert.deepEqual(encoded, plain);
  });

  const cases: [string, Record<string, string>, RegExp][] = [
    [
      "a certificate without its key",
      { TLS_CERT: "x" },
      /invalid configuration: TLS_KEY is required when TLS_CERT is set$/,
    ],
    [
      "a key without its certificate",
      { TLS_KEY: "x" },
      /invalid configuration: TLS_CERT is required when TLS_KEY is set$/,
    ],
    [
      "a certificate that is not PEM",
      { TLS_CERT: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----", TLS_KEY: "k" },
      /TLS_CERT must be a PEM certificate/,
    ],
  ];
  for (const [what, env, message] of cases) {
    it(`stops with one line for ${what}`, () => {
      assert.throws(() => loadConfig({ ...base(), ...env }), message);
    });
  }

  it("stops with one line, without the key's text, for a malformed key or another certificate's key", () => {
    const broken = material.key.replace(/\n[A-Za-z0-9+/]{8}/, "\nAAAAAAAA");
    for (const [key, message] of [
      [
        broken,
        /^invalid configuration: TLS_KEY (must be an unencrypted PEM private key|is not the private key of TLS_CERT)$/,
      ],
      [material.other, /^invalid configuration: TLS_KEY is not the private key of TLS_CERT$/],
    ] as const) {
      assert.throws(
        () => loadConfig({ ...base(), TLS_CERT: material.cert, TLS_KEY: key }),
        (err: unknown) =>
          err instanceof ConfigError &&
          message.test(err.message) &&
          !err.message.includes("PRIVATE KEY"),
      );
    }
  });
});
