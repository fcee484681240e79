/** Every toolbox default, in one place; config parsing and the components both read it. */
export const TOOLBOX_DEFAULTS = {
  target: "digitalocean",
  region: "nyc3",
  size: "s-1vcpu-512mb-10gb",
  dropletImage: "ubuntu-24-04-x64",
  backups: false,
  reservedIp: false,
  tokenGeneration: 0,
  dtmaMemoryMb: 160,
  backendMemoryMb: 192,
  toolCaps: { memoryMb: 256, cpus: 1, pids: 256 },
  swapMb: 1024,
  localBackendPort: 3000,
  sshStateDirName: "agentopia-toolboxes-ssh",
  /** What `npm run images:local` builds: the images of the local target. */
  localImages: { dtma: "agentopia/dtma:local", backend: "agentopia/backend:local" },
} as const;
