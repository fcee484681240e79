/** Docker labels and DigitalOcean tags that identify a toolbox's parts. */

export const LABEL_ROLE = "agentopia.role";
export const LABEL_ACCOUNT = "agentopia.account";
export const LABEL_MANAGED_BY = "agentopia.managed-by";

/** Every toolbox droplet carries this tag. */
export const TOOLBOX_TAG = "agentopia-toolbox";
/** …and exactly one `account-<id>`. */
export const ACCOUNT_TAG_PATTERN = /^account-([a-z0-9-]+)$/;

export function accountTag(accountId: string): string {
  return `account-${accountId}`;
}

export function environmentTag(environment: string): string {
  return `env-${environment}`;
}
