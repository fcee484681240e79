/**
 * Account ids and the names derived from them. An Agentopia account id (a user's UUID) names the
 * stack `acct-<id>`, the droplet and resident containers `tbx-<id>…`, a DNS label and the DTMA's
 * scope on its Docker daemon, so it must be valid in all of them.
 */

/** 1-48 lowercase letters, digits or inner hyphens: a stack, a droplet, a DNS label. A UUID fits. */
export const ACCOUNT_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;
export const ACCOUNT_ID_RULE =
  "must be 1-48 lowercase letters, digits or inner hyphens (it names a stack, a droplet and a DNS label)";

export function isAccountId(value: string): boolean {
  return ACCOUNT_ID_PATTERN.test(value);
}

/** Pulumi stack of one account, run by the automation service. */
export const STACK_PREFIX = "acct-";
/** Droplets, resident containers and networks of one toolbox. */
export const RESOURCE_PREFIX = "tbx-";

export function stackNameFor(accountId: string): string {
  return `${STACK_PREFIX}${accountId}`;
}

/** The droplet's name, and the prefix of every Docker object of the toolbox. */
export function dropletNameFor(accountId: string): string {
  return `${RESOURCE_PREFIX}${accountId}`;
}

export type ResidentRole = "dtma" | "backend";
export type NetworkKey = "control" | "tools";

export function containerNameFor(accountId: string, role: ResidentRole): string {
  return `${dropletNameFor(accountId)}-${role}`;
}

export function networkNameFor(accountId: string, key: NetworkKey): string {
  return `${dropletNameFor(accountId)}-${key}`;
}

/**
 * The DTMA's `DTMA_SCOPE`: the label (and tool container name part) that keeps its tools apart
 * from another toolbox's on the same daemon (two local toolboxes, tests). The DTMA takes at most
 * 31 characters: an id that long is the scope; a longer one (a UUID) loses its hyphens and is
 * cut to 31, which keeps 124 of a UUID's 128 bits.
 */
export function dtmaScopeFor(accountId: string): string {
  return accountId.length <= 31 ? accountId : accountId.replace(/-/g, "").slice(0, 31);
}

/** The Pulumi project of every stack, and the namespace of its config keys. */
export const PROJECT_NAME = "agentopia-toolboxes";
export const CONFIG_NAMESPACE = "agentopia-toolboxes";

/**
 * The account stack's outputs, what the automation service stores: where the toolbox is and its
 * tokens (secret). Config is not echoed back.
 */
export const ACCOUNT_STACK_OUTPUTS = [
  "dropletId",
  "dropletName",
  "dropletUrn",
  "ipv4",
  "ipv6",
  "backendUrl",
  /** The platform CA that signed the backend's certificate (PEM), and its SHA-256 fingerprint. */
  "backendCaCertPem",
  "backendCaSha256",
  /** When the backend's certificate expires (a routine up renews it before then). */
  "backendCertNotAfter",
  "dtmaToken",
  "dtmaTokenPrevious",
  "backendApiToken",
  "agentGatewayToken",
] as const;
export type AccountStackOutput = (typeof ACCOUNT_STACK_OUTPUTS)[number];
