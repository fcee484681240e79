import assert from "node:assert/strict";
import { loadSettings, SettingsError } from "../src/config";

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
    assert.equal(s.pulumi.backendUrl, "file:///var/lib/automation/pulumi-state");
    assert.equal(s.target, "local");
    assert.equal(s.publicBaseUrl, "http://127.0.0.1:8080");
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

  it("digitalocean needs its platform stack, SSH key and public URL", () => {
    const lines = errors({ TOOLBOX_TARGET: "digitalocean" });
    assert.deepEqual(lines.map((l) => l.split(":")[0]).sort(), [
      "PLATFORM_STACK",
      "PUBLIC_BASE_URL",
      "SSH_PRIVATE_KEY",
    ]);
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
