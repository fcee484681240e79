// Settings come from the environment only, parsed once at start-up; a bad one stops the
// process with one line naming the variable. Hand-written rather than zod, which costs ~10 MB of
// resident memory (docs/decisions/0005-dtma-memory-budget.md).

export type Env = NodeJS.ProcessEnv;

/** A bad setting: its message is the one line the process prints before it stops. */
export class ConfigError extends Error {}

class Invalid extends Error {}

/** One variable's parser: reads `env[name]`, throws through `check` when it is wrong. */
export type Parser<T> = (env: Env, name: string) => T;

/** The variable, or `fallback` when it is unset or empty. */
export const read = (env: Env, name: string, fallback: string): string => {
  const v = env[name];
  return v === undefined || v === "" ? fallback : v;
};

export function check(ok: boolean, message: string): void {
  if (!ok) throw new Invalid(message);
}

function numberIn(v: string, min: number, max: number, whole: boolean): number {
  if (whole) check(/^\d+$/.test(v), "must be a whole number");
  else check(/^\d+(\.\d+)?$/.test(v), "must be a number");
  const n = Number(v);
  check(!whole || Number.isSafeInteger(n), "must be a whole number");
  check(n >= min, `must be at least ${min}`);
  check(n <= max, `must be at most ${max}`);
  return n;
}

export const intIn =
  (min: number, max: number, fallback: number): Parser<number> =>
  (env, name) =>
    numberIn(read(env, name, String(fallback)), min, max, true);

export const decimalIn =
  (min: number, max: number, fallback: number): Parser<number> =>
  (env, name) =>
    numberIn(read(env, name, String(fallback)), min, max, false);

// 256-bit tokens are what the component generates; 32 characters is the floor we accept.
function tokenValue(v: string | undefined): string {
  check(v !== undefined && v !== "", "is required");
  check(v!.length >= 32, "must be at least 32 characters");
  check(/^[\x21-\x7e]+$/.test(v!), "must be printable ASCII without spaces");
  return v!;
}

/** A required bearer token. */
export const token: Parser<string> = (env, name) => tokenValue(env[name]);

/** An optional bearer token (unset or empty: none). */
export const optionalToken: Parser<string | undefined> = (env, name) => {
  const v = env[name];
  return v === undefined || v === "" ? undefined : tokenValue(v);
};

export const matching =
  (pattern: RegExp, rule: string, fallback: string): Parser<string> =>
  (env, name) => {
    const v = env[name] ?? fallback;
    check(pattern.test(v), rule);
    return v;
  };

export const oneOf =
  <T extends string>(options: readonly T[], fallback: T): Parser<T> =>
  (env, name) => {
    const v = read(env, name, fallback);
    check(options.includes(v as T), `must be one of ${options.join(", ")}`);
    return v as T;
  };

/** An http(s) URL, without its trailing slashes. */
export const httpUrl =
  (fallback?: string): Parser<string> =>
  (env, name) => {
    const v = read(env, name, fallback ?? "");
    check(v !== "", "is required");
    let url: URL | undefined;
    try {
      url = new URL(v);
    } catch {
      // reported below
    }
    check(
      url !== undefined && (url.protocol === "http:" || url.protocol === "https:"),
      "must be an http(s) URL",
    );
    return v.replace(/\/+$/, "");
  };

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export const logLevel: Parser<string> = oneOf(LOG_LEVELS, "info");

type Parsed<P> = { [K in keyof P]: P[K] extends Parser<infer T> ? T : never };

/** Runs the parsers in order; the first bad variable is reported as `invalid configuration: NAME …`. */
export function parseEnv<P extends Record<string, Parser<unknown>>>(
  parsers: P,
  env: Env,
): Parsed<P> {
  const out: Record<string, unknown> = {};
  for (const [name, parser] of Object.entries(parsers)) {
    try {
      out[name] = parser(env, name);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      throw new ConfigError(`invalid configuration: ${name} ${err.message}`);
    }
  }
  return out as Parsed<P>;
}
