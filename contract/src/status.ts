/**
 * Agentopia's status enums, as its tables define them, and the one map from a tool container's
 * Docker state to an installation status. The DTMA reports with it and the automation service
 * records with it, so the two can never disagree. No imports: the DTMA loads this on a 512 MB
 * droplet (`@agentopia-toolboxes/contract/status`).
 */

/** `account_tool_environment_status_enum`, every value. */
export const TOOLBOX_STATUSES = [
  "inactive",
  "pending_creation",
  "creating",
  "active",
  "error_creation",
  "pending_deletion",
  "deleting",
  "error_deletion",
  "unresponsive",
  "scaling",
  "pending_provision",
  "provisioning",
  "error_provisioning",
  "pending_deprovision",
  "deprovisioning",
  "deprovisioned",
  "error_deprovisioning",
  "awaiting_heartbeat",
] as const;
export type ToolboxStatus = (typeof TOOLBOX_STATUSES)[number];

/** The values this project writes (the life cycle it drives, plus the row's first state). */
export const LIFECYCLE_STATUSES = [
  "inactive",
  "pending_provision",
  "provisioning",
  "awaiting_heartbeat",
  "active",
  "error_provisioning",
  "unresponsive",
  "pending_deprovision",
  "deprovisioning",
  "deprovisioned",
  "error_deprovisioning",
] as const satisfies readonly ToolboxStatus[];
export type LifecycleStatus = (typeof LIFECYCLE_STATUSES)[number];

/** `account_tool_installation_status_enum`, every value. */
export const INSTALLATION_STATUSES = [
  "pending_install",
  "installing",
  "active",
  "error_install",
  "pending_uninstall",
  "uninstalling",
  "uninstalled",
  "error_uninstall",
  "pending_config",
  "stopped",
  "starting",
  "stopping",
  "error_runtime",
  "disabled",
  "pending_deploy",
  "deploying",
  "running",
  "error",
  "pending_delete",
  "deleting",
] as const;
export type InstallationStatus = (typeof INSTALLATION_STATUSES)[number];

/** Docker's container states (`State.Status`). */
export const DOCKER_STATES = [
  "created",
  "running",
  "paused",
  "restarting",
  "removing",
  "exited",
  "dead",
] as const;
export type DockerState = (typeof DOCKER_STATES)[number];

/**
 * A tool container's Docker state → its installation status. `restarting` is a container that
 * exited and is being started again by its restart policy: it is failing, not starting.
 */
export const INSTALLATION_STATUS_FOR_STATE: Readonly<Record<DockerState, InstallationStatus>> = {
  created: "starting",
  running: "running",
  paused: "stopped",
  restarting: "error_runtime",
  removing: "deleting",
  exited: "stopped",
  dead: "error_runtime",
};

export function isDockerState(value: unknown): value is DockerState {
  return typeof value === "string" && (DOCKER_STATES as readonly string[]).includes(value);
}

export function isInstallationStatus(value: unknown): value is InstallationStatus {
  return typeof value === "string" && (INSTALLATION_STATUSES as readonly string[]).includes(value);
}

/**
 * What a reported tool means for its `account_tool_instances` row: the Docker state decides; a
 * report without one falls back to a `status` that is already an installation status; anything
 * else means nothing (the row keeps its status).
 */
export function installationStatusFor(tool: {
  state?: unknown;
  status?: unknown;
}): InstallationStatus | undefined {
  if (isDockerState(tool.state)) return INSTALLATION_STATUS_FOR_STATE[tool.state];
  return isInstallationStatus(tool.status) ? tool.status : undefined;
}
