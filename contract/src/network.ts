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

/** An IPv4 (dotted decimal only: no hex, octal or short forms) or IPv6 range with a prefix. */
export function isCidr(value: string): boolean {
  const [address = "", prefix, ...rest] = value.split("/");
  if (prefix === undefined || rest.length > 0 || !/^\d{1,3}$/.test(prefix)) return false;
  if (ipaddr.IPv4.isValidFourPartDecimal(address)) return Number(prefix) <= 32;
  return ipaddr.IPv6.isValid(address) && Number(prefix) <= 128;
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
