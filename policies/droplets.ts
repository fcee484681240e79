/**
 * Droplet policies: every toolbox droplet is monitored, tagged, inside the platform VPC, of an
 * allowed region and size, and its user-data (readable by anything on the droplet through the
 * metadata service) carries no secret but the droplet's own SSH host key.
 */
import {
  ACCOUNT_TAG_PATTERN,
  ALLOWED_REGIONS,
  ALLOWED_SIZES,
  accountTag,
  dropletNameFor,
  RESOURCE_PREFIX,
  TOOLBOX_TAG,
} from "@agentopia-toolboxes/contract";
import { text, texts } from "./props";
import { scanUserData } from "./secretScan";
import { configOf, type ResourcePolicy } from "./types";

export const DROPLET = "digitalocean:index/droplet:Droplet";
export { TOOLBOX_TAG };
export const ACCOUNT_TAG = ACCOUNT_TAG_PATTERN;

/** The contract's allow-lists: regions with VPC and Premium droplets, sizes a toolbox needs. */
const DEFAULT_ALLOWED_REGIONS: string[] = [...ALLOWED_REGIONS];
const DEFAULT_ALLOWED_SIZES: string[] = [...ALLOWED_SIZES];

export const dropletMonitoring: ResourcePolicy = {
  name: "droplet-monitoring",
  description: "Toolbox droplets run the DigitalOcean monitoring agent (metrics and alerts).",
  enforcementLevel: "mandatory",
  severity: "medium",
  validateResource: (args, report) => {
    if (args.type !== DROPLET) return;
    if (args.props["monitoring"] !== true) report("monitoring must be true.");
  },
};

export const dropletRegion: ResourcePolicy = {
  name: "droplet-allowed-region",
  description: "Droplets are created only in the allowed regions (pack config: allowedRegions).",
  // Cost and data-residency control: mandatory by default, an operator may relax it to advisory.
  enforcementLevel: "mandatory",
  severity: "medium",
  configSchema: {
    properties: {
      allowedRegions: {
        type: "array",
        items: { type: "string" },
        default: DEFAULT_ALLOWED_REGIONS,
      },
    },
  },
  validateResource: (args, report) => {
    if (args.type !== DROPLET) return;
    const { allowedRegions } = configOf(args, { allowedRegions: DEFAULT_ALLOWED_REGIONS });
    const region = text(args.props["region"]);
    if (region === undefined || !allowedRegions.includes(region)) {
      report(
        `region ${region ?? "(unset)"} is not allowed; allowed: ${allowedRegions.join(", ")}.`,
      );
    }
  },
};

export const dropletSize: ResourcePolicy = {
  name: "droplet-allowed-size",
  description: "Droplets use only the allowed sizes (pack config: allowedSizes).",
  // Cost control: mandatory by default, an operator may relax it to advisory.
  enforcementLevel: "mandatory",
  severity: "medium",
  configSchema: {
    properties: {
      allowedSizes: { type: "array", items: { type: "string" }, default: DEFAULT_ALLOWED_SIZES },
    },
  },
  validateResource: (args, report) => {
    if (args.type !== DROPLET) return;
    const { allowedSizes } = configOf(args, { allowedSizes: DEFAULT_ALLOWED_SIZES });
    const size = text(args.props["size"]);
    if (size === undefined || !allowedSizes.includes(size)) {
      report(`size ${size ?? "(unset)"} is not allowed; allowed: ${allowedSizes.join(", ")}.`);
    }
  },
};

export const dropletTags: ResourcePolicy = {
  name: "droplet-toolbox-tags",
  description: `Droplets carry the "${TOOLBOX_TAG}" tag and exactly one "account-<id>" tag.`,
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: (args, report) => {
    if (args.type !== DROPLET) return;
    const tags = texts(args.props["tags"]);
    if (!tags.includes(TOOLBOX_TAG)) report(`the "${TOOLBOX_TAG}" tag is missing.`);
    const accounts = tags.filter((t) => ACCOUNT_TAG.test(t));
    if (accounts.length !== 1) {
      report(`exactly one "account-<id>" tag is required, found ${accounts.length}.`);
    }
    const name = text(args.props["name"]) ?? "";
    const named = name.startsWith(RESOURCE_PREFIX) ? name.slice(RESOURCE_PREFIX.length) : undefined;
    if (named !== undefined && accounts.length === 1 && accounts[0] !== accountTag(named)) {
      report(
        `droplet ${dropletNameFor(named)} is tagged ${accounts[0]}, not ${accountTag(named)}.`,
      );
    }
  },
};

export const dropletVpc: ResourcePolicy = {
  name: "droplet-in-vpc",
  description: "Droplets are placed inside the platform VPC (vpcUuid set).",
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: (args, report) => {
    if (args.type !== DROPLET) return;
    if ((text(args.props["vpcUuid"]) ?? "") === "") report("vpcUuid must be set.");
  },
};

export const dropletUserDataSecrets: ResourcePolicy = {
  name: "droplet-user-data-no-secrets",
  description:
    "User-data carries no secret (it is readable from the metadata service); the droplet's own SSH host key is the one exception.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: (args, report) => {
    if (args.type !== DROPLET) return;
    const userData = text(args.props["userData"]);
    if (userData === undefined) return;
    for (const finding of scanUserData(userData)) {
      report(`user-data holds a secret (${finding.kind}) at ${finding.where}.`);
    }
  },
};

export const dropletPolicies = [
  dropletMonitoring,
  dropletRegion,
  dropletSize,
  dropletTags,
  dropletVpc,
  dropletUserDataSecrets,
];
