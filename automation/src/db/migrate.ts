import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { Pool } from "pg";

/** The plain-SQL migrations shipped with the service (Supabase CLI naming: <timestamp>_<name>.sql). */
export const MIGRATIONS_DIR = path.resolve(
  __dirname,
  __dirname.includes(`${path.sep}dist${path.sep}`) ? "../../../migrations" : "../../migrations",
);

/**
 * Applies every migration not yet recorded, in file-name order, each in its own transaction.
 * An advisory lock makes concurrent start-ups (several workers) apply them exactly once.
 */
export async function migrate(pool: Pool, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query("select pg_advisory_lock(hashtext('automation_schema_migrations'))");
    await client.query(`create table if not exists public.automation_schema_migrations (
      name text primary key, applied_at timestamptz not null default now())`);
    const done = new Set(
      (
        await client.query<{ name: string }>("select name from public.automation_schema_migrations")
      ).rows.map((r) => r.name),
    );
    for (const file of files.filter((f) => !done.has(f))) {
      const sql = await readFile(path.join(dir, file), "utf8");
      await client.query("begin");
      try {
        await client.query(sql);
        await client.query("insert into public.automation_schema_migrations (name) values ($1)", [
          file,
        ]);
        await client.query("commit");
      } catch (err) {
        await client.query("rollback");
        throw new Error(`migration ${file} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(file);
    }
  } finally {
    await client
      .query("select pg_advisory_unlock(hashtext('automation_schema_migrations'))")
      .catch(() => undefined);
    client.release();
  }
  return applied;
}
