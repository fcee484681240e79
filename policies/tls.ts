/**
 * TLS on the backend's port (issue 10): on DigitalOcean the port crosses the internet and every
 * request through it carries a bearer token, so each toolbox backend there has its certificate
 * and key, and no firewall opens the port to the world in front of a backend without them.
 */
import type { PolicyResource } from "@pulumi/policy";
import { BACKEND_PORT, BACKEND_TLS_ENV } from "@agentopia-toolboxes/contract";
import { ACCOUNT_LABEL, CONTAINER, envEntries, labelOf, ROLE_LABEL } from "./containers";
import { ACCOUNT_TAG, DROPLET, TOOLBOX_TAG } from "./droplets";
import { covers, FIREWALL, worldOpenings } from "./firewalls";
import { texts } from "./props";
import type { StackPolicy } from "./types";

/** The account of a toolbox droplet (its `account-<id>` tag), or undefined. */
function accountOf(droplet: PolicyResource): string | undefined {
  const tags = texts(droplet.props["tags"]);
  if (!tags.includes(TOOLBOX_TAG)) return undefined;
  for (const tag of tags) {
    const id = ACCOUNT_TAG.exec(tag)?.[1];
    if (id !== undefined) return id;
  }
  return undefined;
}

function backendOf(resources: PolicyResource[], account: string): PolicyResource | undefined {
  return resources.find(
    (r) =>
      r.type === CONTAINER &&
      labelOf(r.props, ROLE_LABEL) === "backend" &&
      labelOf(r.props, ACCOUNT_LABEL) === account,
  );
}

/** Whether a container's environment carries the certificate and the key (names only). */
function hasTls(container: PolicyResource): boolean {
  const names = envEntries(container.props).map((e) => e.name);
  return names.includes(BACKEND_TLS_ENV.cert) && names.includes(BACKEND_TLS_ENV.key);
}

const backendTlsOnDroplets: StackPolicy = {
  name: "toolbox-backend-tls",
  description: `On DigitalOcean every toolbox backend serves TLS (${BACKEND_TLS_ENV.cert} and ${BACKEND_TLS_ENV.key} in its environment): its port crosses the internet with tokens.`,
  enforcementLevel: "mandatory",
  severity: "critical",
  validateStack: (args, report) => {
    for (const droplet of args.resources.filter((r) => r.type === DROPLET)) {
      const account = accountOf(droplet);
      if (account === undefined) continue;
      const backend = backendOf(args.resources, account);
      if (backend !== undefined && !hasTls(backend)) {
        report(
          `the backend of toolbox ${account} (on droplet ${droplet.name}) has no TLS material: tokens would cross the internet in clear text.`,
          backend.urn,
        );
      }
    }
  },
};

const backendWorldNeedsTls: StackPolicy = {
  name: "firewall-backend-world-needs-tls",
  description: `A firewall may open the backend port (${BACKEND_PORT}/tcp) to the world only in front of a backend that serves TLS.`,
  enforcementLevel: "mandatory",
  severity: "critical",
  validateStack: (args, report) => {
    const droplets = args.resources.filter((r) => r.type === DROPLET);
    for (const fw of args.resources.filter((r) => r.type === FIREWALL)) {
      const sources = worldOpenings(fw.props, BACKEND_PORT);
      if (sources.length === 0) continue;
      for (const droplet of droplets.filter((d) => covers(fw, d))) {
        const account = accountOf(droplet);
        const backend = account === undefined ? undefined : backendOf(args.resources, account);
        if (backend === undefined || !hasTls(backend)) {
          report(
            `firewall ${fw.name} opens ${BACKEND_PORT}/tcp to ${sources.join(", ")} in front of droplet ${droplet.name}, whose backend serves no TLS.`,
            fw.urn,
          );
        }
      }
    }
  },
};

export const tlsPolicies = [backendTlsOnDroplets, backendWorldNeedsTls];
