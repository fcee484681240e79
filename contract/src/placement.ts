/**
 * Where and how big a toolbox may be. `REGIONS` and `SIZES` are what a toolbox can technically
 * use (stack config accepts them); `ALLOWED_REGIONS` and `ALLOWED_SIZES` are the organisation's
 * default allow-lists, which the policy pack enforces and an environment's profile narrows.
 */

/** DigitalOcean regions with VPC and Premium droplet support. */
export const REGIONS = [
  "nyc1",
  "nyc3",
  "sfo2",
  "sfo3",
  "ams3",
  "sgp1",
  "lon1",
  "fra1",
  "tor1",
  "blr1",
  "syd1",
  "atl1",
] as const;
export type Region = (typeof REGIONS)[number];

/** Droplet sizes a toolbox may have: the smallest holds the DTMA, the backend and a few tools. */
export const SIZES = [
  "s-1vcpu-512mb-10gb",
  "s-1vcpu-1gb",
  "s-1vcpu-2gb",
  "s-2vcpu-2gb",
  "s-2vcpu-4gb",
  "s-4vcpu-8gb",
] as const;
export type Size = (typeof SIZES)[number];

/** The pack's default region allow-list: without nyc1, sfo2 and atl1. */
export const ALLOWED_REGIONS: readonly Region[] = [
  "nyc3",
  "sfo3",
  "ams3",
  "fra1",
  "lon1",
  "sgp1",
  "tor1",
  "blr1",
  "syd1",
];
/** The pack's default size allow-list: without s-4vcpu-8gb. */
export const ALLOWED_SIZES: readonly Size[] = [
  "s-1vcpu-512mb-10gb",
  "s-1vcpu-1gb",
  "s-1vcpu-2gb",
  "s-2vcpu-2gb",
  "s-2vcpu-4gb",
];

export const DEFAULT_REGION: Region = "nyc3";
export const DEFAULT_SIZE: Size = "s-1vcpu-512mb-10gb";
export const DEFAULT_DROPLET_IMAGE = "ubuntu-24-04-x64";

/**
 * What an environment's platform stack exports for its toolboxes (output `toolboxProfile`), so a
 * user's toolbox in prod is a prod toolbox: the account program reads it through the platform's
 * StackReference instead of restating the environment.
 */
export interface ToolboxProfile {
  /** Regions with a platform VPC. */
  regions: string[];
  /** Sizes the environment offers. */
  sizes: string[];
  dropletImage: string;
  backups: boolean;
  dtmaMemoryMb: number;
  backendMemoryMb: number;
  swapMb: number;
  toolCaps: { memoryMb: number; cpus: number; pids: number };
  /** Toolboxes get `<accountId>.<zone>` when set. */
  dnsZone?: string;
  /** Images must be pinned by digest. */
  requireDigestPins: boolean;
  /** Who may reach the backend port (`controlPlane` or `public`). */
  backendIngress: "controlPlane" | "public";
}
