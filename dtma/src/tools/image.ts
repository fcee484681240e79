import { parseFamiliarName } from "@swimlane/docker-reference";
import ipaddr from "ipaddr.js";

// Image references and the registries they may come from (issue 13, items 3 and 6). The daemon
// pulls from the host's network, so a registry host is a request the DTMA makes the host send:
// only registries on the allow-list (DTMA_REGISTRIES) are contacted, and an address in a
// loopback, private, link-local or other special range only when an entry names it.

/** A deploy's image, as Docker's reference grammar (distribution/reference) reads it. */
export interface ImageRef {
  /** The registry host as written (lowercased), `docker.io` when the reference names none. */
  host: string;
  port: number | undefined;
  /** What is pulled: the reference with `:latest` when it has neither tag nor digest. */
  pullRef: string;
}

export class ImageRefError extends Error {}

/** Parses `image` with Docker's grammar; throws ImageRefError with the rule it breaks. */
export function parseImageRef(image: string): ImageRef {
  let ref;
  try {
    ref = parseFamiliarName(image);
  } catch (err) {
    throw new ImageRefError(`is not a Docker image reference (${(err as Error).message})`);
  }
  const domain = (ref.domain ?? "").toLowerCase();
  const colon = domain.lastIndexOf(":");
  const host = colon < 0 ? domain : domain.slice(0, colon);
  const port = colon < 0 ? undefined : Number(domain.slice(colon + 1));
  if (port !== undefined && !(Number.isSafeInteger(port) && port >= 1 && port <= 65535))
    throw new ImageRefError("names a registry port outside 1-65535");
  if (host.length > 253) throw new ImageRefError("names a registry host longer than 253");
  const untagged = ref.tag === undefined && ref.digest === undefined;
  return { host, port, pullRef: untagged ? `${image}:latest` : image };
}

/** One entry of DTMA_REGISTRIES. */
type Entry =
  | { kind: "host"; host: string; port: number | undefined }
  | { kind: "suffix"; suffix: string }
  | { kind: "range"; range: [ipaddr.IPv4 | ipaddr.IPv6, number]; port: number | undefined };

export const DEFAULT_REGISTRIES = [
  "docker.io",
  "ghcr.io",
  "quay.io",
  "public.ecr.aws",
  "registry.gitlab.com",
  "mcr.microsoft.com",
  "gcr.io",
  "*.gcr.io",
  "*.pkg.dev",
].join(",");

const DNS_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const ENTRY_RULE =
  "entries are host, host:port, *.domain, an IP address (with :port) or a CIDR range, comma-separated";

/** Go's resolver (getaddrinfo) reads `127.1`, `0x7f.0.0.1` or `2130706433` as IPv4 too. */
function ipLiteral(host: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (!ipaddr.isValid(bare)) return undefined;
  const ip = ipaddr.parse(bare);
  return ip.kind() === "ipv6" && (ip as ipaddr.IPv6).isIPv4MappedAddress()
    ? (ip as ipaddr.IPv6).toIPv4Address()
    : ip;
}

function splitPort(entry: string): { host: string; port: number | undefined } {
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(entry)!;
  // An IPv6 address without brackets has colons of its own.
  if (!m[1].startsWith("[") && m[1].includes(":")) return { host: entry, port: undefined };
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new Error(ENTRY_RULE);
  return { host: m[1], port };
}

function parseEntry(raw: string): Entry {
  const entry = raw.trim().toLowerCase();
  if (entry.startsWith("*.")) {
    const suffix = entry.slice(2);
    if (!DNS_NAME.test(suffix) || !suffix.includes(".")) throw new Error(ENTRY_RULE);
    return { kind: "suffix", suffix: `.${suffix}` };
  }
  if (entry.includes("/")) {
    const [addr = "", prefix = ""] = entry.split("/");
    if (!ipaddr.isValidCIDR(`${addr}/${prefix}`)) throw new Error(ENTRY_RULE);
    return { kind: "range", range: ipaddr.parseCIDR(`${addr}/${prefix}`), port: undefined };
  }
  const { host, port } = splitPort(entry);
  const ip = ipLiteral(host);
  if (ip) return { kind: "range", range: [ip, ip.kind() === "ipv4" ? 32 : 128], port };
  if (!DNS_NAME.test(host)) throw new Error(ENTRY_RULE);
  return { kind: "host", host, port };
}

/** The registries a toolbox may pull from. */
export class RegistryAllowList {
  private readonly entries: Entry[];

  /** `list`: DTMA_REGISTRIES; throws an Error naming the rule on a bad entry. */
  constructor(readonly list: string) {
    this.entries = list
      .split(",")
      .filter((e) => e.trim())
      .map(parseEntry);
    if (this.entries.length === 0) throw new Error(ENTRY_RULE);
  }

  /** Undefined when the image's registry may be contacted, else why not. */
  refusal(ref: Pick<ImageRef, "host" | "port">): string | undefined {
    const { host, port } = ref;
    const named = port === undefined ? host : `${host}:${port}`;
    const ip = ipLiteral(host);
    if (ip) {
      const kind = ip.range();
      const special = kind !== "unicast";
      for (const e of this.entries) {
        if (e.kind !== "range" || (e.port !== undefined && e.port !== port)) continue;
        if (ip.kind() !== e.range[0].kind() || !ip.match(e.range)) continue;
        // 0.0.0.0/0 does not list 127.0.0.1: a special address needs an entry of its own kind.
        if (!special || e.range[0].range() === kind) return undefined;
      }
      return special
        ? `registry ${named} is a ${kind} address, refused unless DTMA_REGISTRIES lists it`
        : `registry ${named} is not in DTMA_REGISTRIES`;
    }
    const local = host === "localhost" || host.endsWith(".localhost");
    for (const e of this.entries) {
      if (e.kind === "host" && e.host === host && e.port === port) return undefined;
      if (e.kind === "suffix" && !local && port === undefined && host.endsWith(e.suffix))
        return undefined;
    }
    return local
      ? `registry ${named} is a loopback name, refused unless DTMA_REGISTRIES lists it`
      : `registry ${named} is not in DTMA_REGISTRIES`;
  }
}
