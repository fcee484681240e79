/** An IPv4 network in CIDR form, host bits zero. */
export interface Ipv4Cidr {
  readonly text: string;
  /** Network address as an unsigned 32-bit integer. */
  readonly network: number;
  readonly prefix: number;
}

const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const CIDR_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}/(\\d{1,2})$`);

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses `a.b.c.d/n`; returns a reason string when it is not a valid IPv4 network. */
export function parseIpv4Cidr(text: string): Ipv4Cidr | string {
  const m = CIDR_RE.exec(text);
  if (!m) return "not an IPv4 CIDR";
  const prefix = Number(m[5]);
  if (prefix > 32) return "not an IPv4 CIDR";
  const address = m.slice(1, 5).reduce((acc, o) => ((acc << 8) | Number(o)) >>> 0, 0);
  const network = (address & mask(prefix)) >>> 0;
  if (network !== address) {
    return `host bits must be zero (did you mean ${formatIpv4(network)}/${prefix}?)`;
  }
  return { text, network, prefix };
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join(".");
}

/** True when `inner` lies entirely within `outer`. */
export function contains(outer: Ipv4Cidr, inner: Ipv4Cidr): boolean {
  return (
    inner.prefix >= outer.prefix && (inner.network & mask(outer.prefix)) >>> 0 === outer.network
  );
}

export function overlaps(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return contains(a, b) || contains(b, a);
}
