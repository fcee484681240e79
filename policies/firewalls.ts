/**
 * Firewall policies: SSH and the DTMA port never admit the internet, and no toolbox droplet is
 * left without a cloud firewall.
 */
import type { PolicyResource } from "@pulumi/policy";
import { DTMA_PORT, isWorldCidr, portRangeIncludes, SSH_PORT } from "@agentopia-toolboxes/contract";
import { DROPLET, TOOLBOX_TAG } from "./droplets";
import { records, text, texts, type Props } from "./props";
import { configOf, type ResourcePolicy, type StackPolicy } from "./types";

export const FIREWALL = "digitalocean:index/firewall:Firewall";

/** Whether a source admits (nearly) everyone: the contract's rule for control-plane ranges. */
export const isWorld = isWorldCidr;

/** Inbound rules of a firewall that open `port` over TCP to the world. */
export function worldOpenings(props: Props, port: number): string[] {
  return records(props["inboundRules"])
    .filter((rule) => (text(rule["protocol"]) ?? "tcp") === "tcp")
    .filter((rule) => portRangeIncludes(text(rule["portRange"]), port))
    .flatMap((rule) => texts(rule["sourceAddresses"]).filter(isWorld));
}

function portPolicy(name: string, what: string, defaultPort: number): ResourcePolicy {
  return {
    name,
    description: `The ${what} port is never open to the internet (0.0.0.0/0, ::/0 or any near-world range).`,
    enforcementLevel: "mandatory",
    severity: "critical",
    configSchema: { properties: { port: { type: "integer", default: defaultPort } } },
    validateResource: (args, report) => {
      if (args.type !== FIREWALL) return;
      const { port } = configOf(args, { port: defaultPort });
      for (const source of worldOpenings(args.props, port)) {
        report(`an inbound rule opens the ${what} port ${port}/tcp to ${source}.`);
      }
    },
  };
}

export const firewallDtmaPort = portPolicy("firewall-dtma-port-private", "DTMA", DTMA_PORT);
export const firewallSsh = portPolicy("firewall-ssh-private", "SSH", SSH_PORT);

export function covers(firewall: PolicyResource, droplet: PolicyResource): boolean {
  const listed = firewall.propertyDependencies["dropletIds"] ?? [];
  if (listed.some((r) => r.urn === droplet.urn)) return true;
  const dropletTags = texts(droplet.props["tags"]);
  return texts(firewall.props["tags"]).some((t) => dropletTags.includes(t));
}

export const toolboxFirewallCoverage: StackPolicy = {
  name: "toolbox-droplet-has-firewall",
  description: "Every toolbox droplet is covered by a cloud firewall (by droplet id or by tag).",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateStack: (args, report) => {
    const firewalls = args.resources.filter((r) => r.type === FIREWALL);
    const droplets = args.resources.filter(
      (r) => r.type === DROPLET && texts(r.props["tags"]).includes(TOOLBOX_TAG),
    );
    for (const droplet of droplets) {
      if (!firewalls.some((fw) => covers(fw, droplet))) {
        report(`toolbox droplet ${droplet.name} is not covered by any firewall.`, droplet.urn);
      }
    }
  },
};

export const firewallPolicies = [firewallDtmaPort, firewallSsh, toolboxFirewallCoverage];
