import assert from "node:assert/strict";
import { ALLOWED_REGIONS } from "@agentopia-toolboxes/contract";
import { loadSettings, SettingsError } from "../src/config";
import { digitaloceanEnv } from "./fixtures/settingsEnv";

const errors = (env: Record<string, string>) => {
  try {
    loadSettings(env);
    return [];
  } catch (err) {
    assert.ok(err instanceof SettingsError);
    return err.lines;
  }
};

describe("settings", () => {
  it("runs with no settings at all: embedded Postgres, file backend, local target", () => {
    const s = loadSettings({ DATA_DIR: "/var/lib/automation" });
    assert.equal(s.port, 8080);
    assert.equal(s.databaseUrl, undefined);
    assert.equal(s.serviceToken, undefined);
    assert.equal(s.pulumi.stateBackendUrl, "file:///var/lib/automation/pulumi-state");
    assert.equal(s.target, "local");
    // The local DTMA heartbeats from its container, where the host is host.docker.internal.
    assert.equal(s.publicBaseUrl, "http://host.docker.internal:8080");
    assert.deepEqual(s.allowedRegions, ALLOWED_REGIONS);
    assert.equal(s.defaultRegion, "nyc3");
    assert.equal(s.heartbeatTimeoutSeconds, 180);
  });

  it("one clear line per mistake, naming the variable", () => {
    const lines = errors({
      PORT: "eighty",
      SERVICE_TOKEN: "short",
      DATABASE_URL: "mysql://x",
      TOOLBOX_TARGET: "aws",
      TOKEN_ENCRYPTION_KEY: "abc",
      CONTROL_PLANE_CIDRS: '["10.0.0.0/99"]',
    });
    assert.equal(lines.length, 6, lines.join("\n"));
    for (const name of [
      "PORT",
      "SERVICE_TOKEN",
      "DATABASE_URL",
      "TOOLBOX_TARGET",
      "TOKEN_ENCRYPTION_KEY",
      "CONTROL_PLANE_CIDRS",
    ]) {
      assert.ok(
        lines.some((l) => l.startsWith(`${name}: `)),
        name,
      );
    }
    assert.ok(lines.every((l) => !l.includes("\n")));
  });

  it("the Supabase URL and key come as a pair", () => {
    assert.deepEqual(errors({ SUPABASE_URL: "https://p.supabase.co" }), [
      "SUPABASE_ANON_KEY: is required when the other of SUPABASE_URL / SUPABASE_ANON_KEY is set",
    ]);
  });

  it("digitalocean needs everything the account program needs there, or it cannot start", () => {
    const lines = errors({ TOOLBOX_TARGET: "digitalocean" });
    assert.deepEqual(lines.map((l) => l.split(":")[0]).sort(), [
      "BACKEND_IMAGE",
      "CONTROL_PLANE_CIDRS",
      "DTMA_IMAGE",
      "PLATFORM_STACK",
      "PUBLIC_BASE_URL",
      "SSH_PRIVATE_KEY",
    ]);
    assert.deepEqual(
      errors({ ...digitaloceanEnv, CONTROL_PLANE_CIDRS: "[]" }).map((l) => l.split(":")[0]),
      ["CONTROL_PLANE_CIDRS"],
    );
    assert.deepEqual(errors(digitaloceanEnv), []);
  });

  it("refuses settings no stack could be built from, one line each", () => {
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ CONTROL_PLANE_CIDRS: '["0.0.0.0/1"]' }, "CONTROL_PLANE_CIDRS", /no wider than \/8/],
      [{ DTMA_IMAGE: "Not An Image" }, "DTMA_IMAGE", /image reference/],
      [{ DEFAULT_REGION: "atl1" }, "DEFAULT_REGION", /allowed regions/],
      [{ DEFAULT_SIZE: "s-4vcpu-8gb" }, "DEFAULT_SIZE", /allowed sizes/],
      [{ ALLOWED_REGIONS: '["atlantis"]' }, "ALLOWED_REGIONS", /must be one of/],
      [{ ALLOWED_SIZES: "[]" }, "ALLOWED_SIZES", /must not be empty/],
      [{ SSH_PRIVATE_KEY: "not a key" }, "SSH_PRIVATE_KEY", /private key/],
      [{ TOOLBOX_TARGET: "local", HOST: "127.0.0.1" }, "HOST", /host.docker.internal/],
    ];
    for (const [change, name, pattern] of cases) {
      const lines = errors({ ...(change.TOOLBOX_TARGET ? {} : digitaloceanEnv), ...change });
      assert.equal(lines.length, 1, `${name}: ${lines.join(" | ")}`);
      assert.ok(lines[0].startsWith(`${name}: `), lines[0]);
      assert.match(lines[0], pattern);
      assert.equal(lines[0].includes("not a key"), false, "a bad value is never echoed");
    }
    // A region an operator widened the list with is fine when the list names it.
    assert.equal(
      loadSettings({ ...digitaloceanEnv, ALLOWED_REGIONS: '["atl1"]', DEFAULT_REGION: "atl1" })
        .defaultRegion,
      "atl1",
    );
  });

  it("sessions: the project's JWT secret, the failure limit and the proxies in front (issue 13, item 10)", () => {
    const s = loadSettings({
      SUPABASE_URL: "https://project.supabase.co",
      SUPABASE_ANON_KEY: "anon",
      SUPABASE_JWT_SECRET: "s".repeat(40),
      AUTH_FAILURES_PER_MINUTE: "50",
      TRUST_PROXY: "10.0.0.1, 192.0.2.0/24,::1",
    });
    assert.equal(s.supabase?.jwtSecret, "s".repeat(40));
    assert.equal(s.authFailuresPerMinute, 50);
    assert.deepEqual(s.trustProxy, ["10.0.0.1", "192.0.2.0/24", "::1"]);
    const defaults = loadSettings({});
    assert.equal(defaults.authFailuresPerMinute, 30);
    assert.equal(defaults.eventStreamsPerUser, 10);
    assert.equal(defaults.eventStreamsPerService, 500);
    assert.equal(loadSettings({ EVENT_STREAMS_PER_USER: "3" }).eventStreamsPerUser, 3);
    assert.deepEqual(errors({ EVENT_STREAMS_PER_SERVICE: "0" }).length, 1);
    assert.deepEqual(defaults.trustProxy, []);
    const lines = errors({
      SUPABASE_JWT_SECRET: "short",
      AUTH_FAILURES_PER_MINUTE: "0",
      TRUST_PROXY: "10.0.0.1,proxy.example",
    });
    assert.deepEqual(
      lines.map((l) => l.split(":")[0]),
      ["SUPABASE_JWT_SECRET", "AUTH_FAILURES_PER_MINUTE", "TRUST_PROXY"],
      lines.join("\n"),
    );
    assert.ok(
      lines.every((l) => !l.includes("short")),
      "a rejected secret is not repeated",
    );
  });

  it("accepts a 32-byte key as hex or base64", () => {
    assert.equal(
      loadSettings({ TOKEN_ENCRYPTION_KEY: "ab".repeat(32) }).tokenEncryptionKey?.length,
      32,
    );
    assert.equal(
      loadSettings({ TOKEN_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64") })
        .tokenEncryptionKey?.length,
      32,
    );
  });
});
