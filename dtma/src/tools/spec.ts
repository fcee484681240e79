import type { Isolation, RegistryAuth, ToolResources, ToolSpec } from "../api";
import { TOOL_NAME_PATTERN, TOOL_NAME_RULE } from "../api";
import { HttpError } from "@agentopia-toolboxes/servicekit/http";
import { ImageRefError, parseImageRef } from "./image";

// The deploy body, validated strictly: unknown keys (privileged, binds, devices, cap_add,
// network_mode, ...) are refused, so no request can loosen the sandbox. Hand-written rather than
// zod: zod costs ~10 MB of resident memory on a 512 MB droplet (docs/decisions/0005). Fields are
// checked in SPEC_FIELDS order, unknown keys after them, and the first failure is answered as a
// 400 naming the field.

export interface Caps {
  memoryMb: number;
  cpus: number;
  pids: number;
  /** Lanes of one per_session tool (DTMA_MAX_LANES_PER_TOOL). */
  lanes: number;
  /** Tools that may run as root at once (DTMA_MAX_ROOT_TOOLS); default none. */
  rootTools?: number;
}

/** The most lanes a deploy may ask for, whatever the toolbox's cap. */
const MAX_LANES = 32;
export const DEFAULT_LANES = 4;

export type ParsedSpec = Omit<
  ToolSpec,
  "transport" | "isolation" | "max_lanes" | "network" | "pull" | "run_as_root"
> & {
  run_as_root: boolean;
  transport: { type: "stdio" } | { type: "http"; port: number; path: string };
  isolation: Isolation;
  max_lanes: number;
  network: "none" | "egress";
  pull: "missing" | "always";
};

/** Bad input: 400 naming the field. */
export class ValidationError extends HttpError {
  constructor(field: string, message: string) {
    super(400, "invalid_request", message, field);
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const NO_NUL = /^[^\0]*$/;
const NUL_RULE = "must not contain NUL";

type Obj = Record<string, unknown>;

const fail = (path: string, message: string): never => {
  throw new ValidationError(path || "body", message);
};
const at = (path: string, key: string | number) => (path ? `${path}.${key}` : String(key));

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number" && Number.isNaN(v)) return "NaN";
  return typeof v;
}
const expected = (path: string, type: string, v: unknown) =>
  fail(path, `Invalid input: expected ${type}, received ${typeName(v)}`);

function object(v: unknown, path: string, type = "object"): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return expected(path, type, v);
  return v as Obj;
}

/** Refuses keys outside `allowed` (checked after the fields). */
function noOtherKeys(o: Obj, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key))
      fail(at(path, key), "is not allowed (the sandbox settings cannot be changed)");
  }
}

interface StringRule {
  max?: number;
  pattern?: RegExp;
  rule?: string;
}
function string(v: unknown, path: string, r: StringRule = {}): string {
  if (typeof v !== "string") return expected(path, "string", v);
  if (r.max !== undefined && v.length > r.max)
    fail(path, `Too big: expected string to have <=${r.max} characters`);
  if (r.pattern && !r.pattern.test(v)) fail(path, r.rule ?? `must match ${String(r.pattern)}`);
  return v;
}

interface NumberRule {
  int?: boolean;
  min: number;
  max: number;
  /** Message when above `max` (the toolbox's caps). */
  tooBig?: string;
}
function number(v: unknown, path: string, r: NumberRule): number {
  if (typeof v !== "number" || !Number.isFinite(v)) return expected(path, "number", v);
  if (r.int && !Number.isSafeInteger(v)) fail(path, "Invalid input: expected int, received number");
  if (v < r.min) fail(path, `Too small: expected number to be >=${r.min}`);
  if (v > r.max) fail(path, r.tooBig ?? `Too big: expected number to be <=${r.max}`);
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, options: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!options.includes(v as T))
    fail(path, `Invalid option: expected one of ${options.map((o) => `"${o}"`).join("|")}`);
  return v as T;
}

function envMap(v: unknown, path: string): Record<string, string> {
  const input = object(v, path, "record");
  const out: Record<string, string> = {};
  for (const key of Object.keys(input)) {
    string(key, at(path, key), {
      pattern: ENV_NAME,
      rule: "environment variable names are letters, digits and '_'",
    });
    if (key === "__proto__") continue; // never copied: on a plain object it names the prototype
    out[key] = string(input[key], at(path, key), { max: 32_768, pattern: NO_NUL, rule: NUL_RULE });
  }
  if (Object.keys(input).length > 200) fail(path, "at most 200 variables");
  return out;
}

function transport(v: unknown, path: string): ParsedSpec["transport"] {
  const t = object(v, path);
  if (t.type === "stdio") {
    noOtherKeys(t, ["type"], path);
    return { type: "stdio" };
  }
  if (t.type === "http") {
    const port = number(t.port, at(path, "port"), { int: true, min: 1, max: 65535 });
    const p =
      t.path === undefined
        ? "/mcp"
        : string(t.path, at(path, "path"), {
            pattern: /^\/[\x21-\x7e]{0,255}$/,
            rule: "must start with '/' and be printable ASCII",
          });
    noOtherKeys(t, ["type", "port", "path"], path);
    return { type: "http", port, path: p };
  }
  return fail(at(path, "type"), "Invalid discriminator value. Expected 'stdio' | 'http'");
}

function resources(v: unknown, path: string, caps: Caps): ToolResources {
  const r = object(v, path);
  const out: ToolResources = {};
  const cap = (max: number) => ({ max, tooBig: `exceeds this toolbox's cap (${max})` });
  if (r.memory_mb !== undefined)
    out.memory_mb = number(r.memory_mb, at(path, "memory_mb"), {
      int: true,
      min: 8,
      ...cap(caps.memoryMb),
    });
  if (r.cpus !== undefined)
    out.cpus = number(r.cpus, at(path, "cpus"), { min: 0.01, ...cap(caps.cpus) });
  if (r.pids !== undefined)
    out.pids = number(r.pids, at(path, "pids"), { int: true, min: 8, ...cap(caps.pids) });
  noOtherKeys(r, ["memory_mb", "cpus", "pids"], path);
  return out;
}

const AUTH_FIELDS = [
  ["username", 512],
  ["password", 4096],
  ["identitytoken", 8192],
  ["serveraddress", 512],
] as const;

function registryAuth(v: unknown, path: string): RegistryAuth {
  const a = object(v, path);
  const out: RegistryAuth = {};
  for (const [key, max] of AUTH_FIELDS) {
    if (a[key] !== undefined) out[key] = string(a[key], at(path, key), { max });
  }
  noOtherKeys(
    a,
    AUTH_FIELDS.map(([key]) => key),
    path,
  );
  return out;
}

const SPEC_FIELDS = [
  "image",
  "command",
  "env",
  "secrets",
  "transport",
  "isolation",
  "max_lanes",
  "resources",
  "network",
  "account_tool_instance_id",
  "pull",
  "registry_auth",
  "user",
  "run_as_root",
] as const;

/** A numeric uid, optionally with a numeric gid; never uid 0 (that is `run_as_root`). */
const USER = /^[1-9][0-9]{0,9}(?::[0-9]{1,10})?$/;

export function validateName(name: string): void {
  if (!TOOL_NAME_PATTERN.test(name)) throw new ValidationError("name", TOOL_NAME_RULE);
}

/** Parses a deploy body; throws ValidationError naming the first offending field. */
export function parseSpec(body: unknown, caps: Caps): ParsedSpec {
  const b = object(body, "");
  const image = string(b.image, "image", { max: 512 });
  try {
    parseImageRef(image);
  } catch (err) {
    if (!(err instanceof ImageRefError)) throw err;
    fail("image", `${err.message}; expected registry/name:tag or name@sha256:<digest>`);
  }
  let command: string[] | undefined;
  if (b.command !== undefined) {
    if (!Array.isArray(b.command)) return expected("command", "array", b.command);
    command = (b.command as unknown[]).map((c, i) =>
      string(c, at("command", i), { max: 4096, pattern: NO_NUL, rule: NUL_RULE }),
    );
    if (command.length > 64) fail("command", "Too big: expected array to have <=64 items");
  }
  const env = b.env === undefined ? undefined : envMap(b.env, "env");
  const secrets = b.secrets === undefined ? undefined : envMap(b.secrets, "secrets");
  const t = transport(b.transport, "transport");
  const isolation = oneOf(b.isolation, "isolation", ["shared", "per_session"], "shared");
  // Stored for shared tools too (it only takes effect with per_session).
  const maxLanes =
    b.max_lanes === undefined
      ? Math.min(DEFAULT_LANES, caps.lanes)
      : number(b.max_lanes, "max_lanes", {
          int: true,
          min: 1,
          max: Math.min(MAX_LANES, caps.lanes),
          tooBig:
            caps.lanes < MAX_LANES
              ? `exceeds this toolbox's cap (${caps.lanes})`
              : `Too big: expected number to be <=${MAX_LANES}`,
        });
  const res = b.resources === undefined ? undefined : resources(b.resources, "resources", caps);
  const network = oneOf(b.network, "network", ["none", "egress"], "egress");
  const id = b.account_tool_instance_id;
  if (id !== undefined && id !== null) {
    string(id, "account_tool_instance_id", {
      pattern: /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/,
      rule: "must be an id (letters, digits, '-', '_')",
    });
  }
  const pull = oneOf(b.pull, "pull", ["missing", "always"], "missing");
  const auth =
    b.registry_auth === undefined ? undefined : registryAuth(b.registry_auth, "registry_auth");
  const user =
    b.user === undefined
      ? undefined
      : string(b.user, "user", {
          max: 21,
          pattern: USER,
          rule: "must be a numeric uid or uid:gid, not 0 (run_as_root asks for root)",
        });
  let runAsRoot = false;
  if (b.run_as_root !== undefined) {
    if (typeof b.run_as_root !== "boolean")
      return expected("run_as_root", "boolean", b.run_as_root);
    runAsRoot = b.run_as_root;
  }
  if (runAsRoot && user !== undefined) fail("user", "cannot be set with run_as_root");
  if (runAsRoot && (caps.rootTools ?? 0) === 0)
    fail("run_as_root", "this toolbox runs no tool as root (DTMA_MAX_ROOT_TOOLS is 0)");
  noOtherKeys(b, SPEC_FIELDS, "");
  for (const key of Object.keys(secrets ?? {})) {
    if (env && Object.hasOwn(env, key)) fail(at("secrets", key), "also set in env");
  }

  // In SPEC_FIELDS order, optional keys only when given.
  const spec: ParsedSpec = { image } as ParsedSpec;
  if (command) spec.command = command;
  if (env) spec.env = env;
  if (secrets) spec.secrets = secrets;
  spec.transport = t;
  spec.isolation = isolation;
  spec.max_lanes = maxLanes;
  if (res) spec.resources = res;
  spec.network = network;
  if (id !== undefined) spec.account_tool_instance_id = id as string | null;
  spec.pull = pull;
  if (auth) spec.registry_auth = auth;
  if (user !== undefined) spec.user = user;
  spec.run_as_root = runAsRoot;
  return spec;
}
