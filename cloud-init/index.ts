/** Pure renderer of a toolbox droplet's `#cloud-config` (Ubuntu 24.04). See README.md. */
export { CloudInitError } from "./errors";
export { CLOUD_INIT_DEFAULTS, type CloudInitOptions } from "./options";
export { DOCKER_GROUP_GID, renderCloudConfig } from "./render";
