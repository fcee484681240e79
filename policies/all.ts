/** Every policy of the pack, in one list that the entry file, the tests and `npm run plan` share. */
import { accountImageDigest, containerPolicies } from "./containers";
import { dropletPolicies } from "./droplets";
import { firewallPolicies } from "./firewalls";
import { tlsPolicies } from "./tls";
import { toolboxShape } from "./toolboxes";
import type { ResourcePolicy, StackPolicy } from "./types";

export const policies: (ResourcePolicy | StackPolicy)[] = [
  ...dropletPolicies,
  ...firewallPolicies,
  ...containerPolicies,
  ...tlsPolicies,
  toolboxShape,
  accountImageDigest,
];
