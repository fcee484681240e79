/**
 * Ports and subnets of a toolbox, and the rule for the addresses allowed to reach it. The host
 * firewall (cloud-init), the cloud firewall, the container specs and the policy pack agree on
 * them by importing them from here.
 */
import ipaddr from "ipaddr.js";

/** The DTMA's port inside the private control network; never published, never opened. */
export const DTMA_PORT = 30000;
/** The backend (toolbox gateway) port, published on the host behind the cloud firewall. */
export const BACKEND_PORT = 3000;
export const SSH_PORT = 22;
/** Subnets fixed on droplets so the host firewall can name them. */
export const CONTROL_SUBNET = "172.30.0.0/24";
export const TOOLS_SUBNET = "172.31.0.0/16";
/** The DTMA's DNS name on the control network: the backend reaches it as `http://dtma:30000`. */
export const DTMA_ALIAS = "dtma";
export const BACKEND_ALIAS = "backend";

/**
 * Who may reach the backend port: `controlPlane` (the control plane's CIDRs only) or `public`
 * (agents and edge functions whose addresses are not fixed), which needs the backend's TLS.
 */
export const BACKEND_INGRESS = ["controlPlane", "public"] as const;
export type BackendIngress = (typeof BACKEND_INGRESS)[number];

/** The backend's settings that carry its certificate and key (base64 of PEM). */
export const BACKEND_TLS_ENV = { cert: "TLS_CERT", key: "TLS_KEY" } as const;

/** `address/prefix` split at its one slash, the prefix 1-3 decimal digits; else undefined. */
function splitCidr(value: string): { address: string; prefix: number } | undefined {
  const [address = "", prefix, ...rest] = value.split("/");
  if (prefix === undefined || rest.length > 0 || !/^\d{1,3}$/.test(prefix)) return undefined;
  return { address, prefix: Number(prefix) };
}

/** An IPv4 range with a prefix, the address in dotted decimal only (no hex, octal or short forms). */
export function isIpv4Cidr(value: string): boolean {
  const cidr = splitCidr(value);
  return (
    cidr !== undefined && ipaddr.IPv4.isValidFourPartDecimal(cidr.address) && cidr.prefix <= 32
  );
}

/** An IPv4 (as `isIpv4Cidr`) or IPv6 range with a prefix. */
export function isCidr(value: string): boolean {
  if (isIpv4Cidr(value)) return true;
  const cidr = splitCidr(value);
  return cidr !== undefined && ipaddr.IPv6.isValid(cidr.address) && cidr.prefix <= 128;
}

/** An IPv4 network: a range whose host bits are zero. */
export interface Ipv4Network {
  /** As it was written. */
  readonly text: string;
  readonly address: ipaddr.IPv4;
  readonly prefix: number;
}

/** Parses an IPv4 network (`isIpv4Cidr`, host bits zero); what is wrong with it otherwise. */
export function parseIpv4Network(text: string): Ipv4Network | string {
  if (!isIpv4Cidr(text)) return "not an IPv4 CIDR";
  const [address, prefix] = ipaddr.IPv4.parseCIDR(text);
  const network = ipaddr.IPv4.networkAddressFromCIDR(text);
  if (network.toString() !== address.toString()) {
    return `host bits must be zero (did you mean ${network.toString()}/${prefix}?)`;
  }
  return { text, address, prefix };
}

/** A range: an address (its bits past the prefix do not count) and a prefix length. */
export interface AddressRange {
  readonly address: ipaddr.IPv4 | ipaddr.IPv6;
  readonly prefix: number;
}

/** True when `inner` lies entirely within `outer` (ranges of different families never do). */
export function rangeContains(outer: AddressRange, inner: AddressRange): boolean {
  return (
    outer.address.kind() === inner.address.kind() &&
    inner.prefix >= outer.prefix &&
    inner.address.match(outer.address, outer.prefix)
  );
}

/** True when two ranges share an address: one of them holds the other. */
export function rangesOverlap(a: AddressRange, b: AddressRange): boolean {
  return rangeContains(a, b) || rangeContains(b, a);
}

/**
 * Whether a firewall port range (`"22"`, `"8000-9000"`; `"all"`, `"0"`, empty or undefined for
 * every port, as DigitalOcean writes them) includes `port`.
 */
export function portRangeIncludes(range: string | undefined, port: number): boolean {
  if (range === undefined || range === "" || range === "all" || range === "0") return true;
  const [from, to = from] = range.split("-").map((p) => Number(p.trim()));
  return from !== undefined && port >= from && port <= to;
}

/**
 * Whether a range admits (nearly) everyone: `0.0.0.0/0`, `::/0`, and any prefix so short no
 * control plane needs it (IPv4 shorter than /8, IPv6 shorter than /16), which also catches the
 * `0.0.0.0/1` + `128.0.0.0/1` split. A single address (no prefix) is not.
 */
export function isWorldCidr(value: string): boolean {
  if (!isCidr(value)) return false;
  const [address, prefix] = ipaddr.parseCIDR(value);
  return address.kind() === "ipv4" ? prefix < 8 : prefix < 16;
}

export const CONTROL_PLANE_CIDR_RULE =
  "must be a CIDR such as 203.0.113.0/24 or 2001:db8::/32, no wider than /8 (IPv4) or /16 (IPv6): SSH and the backend are never open to the world";

/** Undefined when `value` may be a control-plane range, else what is wrong with it. */
export function controlPlaneCidrProblem(value: string): string | undefined {
  if (!isCidr(value) || isWorldCidr(value)) return CONTROL_PLANE_CIDR_RULE;
  return undefined;
}
