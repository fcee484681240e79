/**
 * Stack policy on a toolbox's shape: each toolbox (an AccountToolbox component, a tagged droplet
 * or an account named by container labels) has exactly one DTMA and one backend container.
 */
import type { PolicyResource } from "@pulumi/policy";
import { ACCOUNT_LABEL, CONTAINER, ROLE_LABEL, labelOf } from "./containers";
import { ACCOUNT_TAG, DROPLET, TOOLBOX_TAG } from "./droplets";
import { texts } from "./props";
import type { StackPolicy } from "./types";

export const TOOLBOX_COMPONENT = "agentopia:toolbox:AccountToolbox";
const ROLES = ["dtma", "backend"] as const;

function descendsFrom(resource: PolicyResource, ancestor: PolicyResource): boolean {
  for (let p = resource.parent; p !== undefined; p = p.parent)
    if (p.urn === ancestor.urn) return true;
  return false;
}

/** "" when the containers hold exactly one of each role, else what is wrong. */
function shapeProblem(containers: PolicyResource[]): string {
  return ROLES.map((role) => {
    const n = containers.filter((c) => labelOf(c.props, ROLE_LABEL) === role).length;
    return n === 1 ? "" : `${n} ${role} containers`;
  })
    .filter((p) => p !== "")
    .join(" and ");
}

export const toolboxShape: StackPolicy = {
  name: "toolbox-one-dtma-one-backend",
  description: `Every toolbox has exactly one DTMA and one backend container (labels ${ROLE_LABEL}, ${ACCOUNT_LABEL}).`,
  enforcementLevel: "mandatory",
  severity: "high",
  validateStack: (args, report) => {
    const containers = args.resources.filter((r) => r.type === CONTAINER);
    for (const c of containers) {
      const role = labelOf(c.props, ROLE_LABEL);
      if (role !== "dtma" && role !== "backend") {
        report(
          `container ${c.name} has ${ROLE_LABEL}=${role ?? "(unset)"}, not dtma or backend.`,
          c.urn,
        );
      } else if (labelOf(c.props, ACCOUNT_LABEL) === undefined) {
        report(`container ${c.name} has no ${ACCOUNT_LABEL} label.`, c.urn);
      }
    }
    for (const toolbox of args.resources.filter((r) => r.type === TOOLBOX_COMPONENT)) {
      const problem = shapeProblem(containers.filter((c) => descendsFrom(c, toolbox)));
      if (problem !== "") report(`toolbox ${toolbox.name} has ${problem}.`, toolbox.urn);
    }
    const accounts = new Set<string>();
    for (const d of args.resources.filter((r) => r.type === DROPLET)) {
      const tags = texts(d.props["tags"]);
      if (!tags.includes(TOOLBOX_TAG)) continue;
      for (const tag of tags) {
        const id = ACCOUNT_TAG.exec(tag)?.[1];
        if (id !== undefined) accounts.add(id);
      }
    }
    for (const c of containers) {
      const id = labelOf(c.props, ACCOUNT_LABEL);
      if (id !== undefined) accounts.add(id);
    }
    for (const id of [...accounts].sort()) {
      const problem = shapeProblem(
        containers.filter((c) => labelOf(c.props, ACCOUNT_LABEL) === id),
      );
      if (problem !== "") report(`account ${id} has ${problem}.`);
    }
  },
};
