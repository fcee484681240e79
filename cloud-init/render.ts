import { stringify } from "yaml";
import { CloudInitError } from "./errors";
import { hostFiles, SETUP_SCRIPT_PATH } from "./hostFiles";
import { resolveOptions, type CloudInitOptions } from "./options";

/**
 * GID of the `docker` group, fixed before docker.io is installed (its postinst keeps an existing
 * group), so the non-root DTMA container can be given the socket's group by number.
 */
export const DOCKER_GROUP_GID = 2375;

/** DigitalOcean's user-data limit. */
const USER_DATA_LIMIT_BYTES = 64 * 1024;

/**
 * Renders the droplet's `#cloud-config`. Pure and deterministic. The only secret it carries is
 * the droplet's own SSH host key (DESIGN.md): user-data is readable from the metadata service,
 * which the rendered firewall closes to containers.
 */
export function renderCloudConfig(opts: CloudInitOptions): string {
  const o = resolveOptions(opts);
  const config = {
    timezone: o.timezone,
    // Runs before packages on every boot; creating the group is idempotent.
    bootcmd: [
      [
        "sh",
        "-c",
        `getent group docker >/dev/null || groupadd --system --gid ${DOCKER_GROUP_GID} docker`,
      ],
    ],
    package_update: true,
    // Boot from a patched base; unattended-upgrades keeps it patched afterwards.
    package_upgrade: true,
    packages: ["docker.io", "unattended-upgrades", "iptables"],
    ...(o.swapMb > 0 ? { swap: { filename: "/swapfile", size: `${o.swapMb}M` } } : {}),
    // Root logs in, by key only; no other user is created, no password is set anywhere.
    disable_root: false,
    ssh_pwauth: false,
    // Only the keys given here, not keys attached to the droplet through the provider.
    allow_public_ssh_keys: false,
    users: [{ name: "root", lock_passwd: true, ssh_authorized_keys: o.authorizedKeys }],
    // Delete the image's host keys and install the pinned one. With ssh_keys set cloud-init
    // generates nothing; the schema wants a non-empty list, so it names only ed25519.
    ssh_deletekeys: true,
    ssh_genkeytypes: ["ed25519"],
    ssh_keys: { ed25519_private: o.hostKey.privatePem, ed25519_public: o.hostKey.publicLine },
    write_files: hostFiles(o),
    runcmd: [SETUP_SCRIPT_PATH],
  };
  const text = `#cloud-config\n${stringify(config, { lineWidth: 0 })}`;
  if (Buffer.byteLength(text) > USER_DATA_LIMIT_BYTES) {
    throw new CloudInitError("authorizedKeys", "the user-data would exceed 64 KiB");
  }
  return text;
}
