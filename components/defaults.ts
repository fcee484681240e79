import {
  BACKEND_PORT,
  DEFAULT_DROPLET_IMAGE,
  DEFAULT_REGION,
  DEFAULT_SIZE,
  LOCAL_IMAGES,
} from "@agentopia-toolboxes/contract";

/** Every toolbox default, in one place; config parsing and the components both read it. */
export const TOOLBOX_DEFAULTS = {
  target: "digitalocean",
  region: DEFAULT_REGION,
  size: DEFAULT_SIZE,
  dropletImage: DEFAULT_DROPLET_IMAGE,
  backups: false,
  reservedIp: false,
  tokenGeneration: 0,
  dtmaMemoryMb: 160,
  backendMemoryMb: 192,
  toolCaps: { memoryMb: 256, cpus: 1, pids: 256 },
  swapMb: 1024,
  localBackendPort: BACKEND_PORT,
  sshStateDirName: "agentopia-toolboxes-ssh",
  /** What `npm run images:local` builds: the images of the local target. */
  localImages: LOCAL_IMAGES,
} as const;
