import {
  DOCKER_DROP_IN,
  FIREWALL_SCRIPT_PATH,
  FIREWALL_UNIT,
  FIREWALL_UNIT_NAME,
  firewallScript,
} from "./firewall";
import type { ResolvedOptions } from "./options";

/** One `write_files` entry. */
export interface HostFile {
  path: string;
  permissions: "0644" | "0755";
  content: string;
}

export const SETUP_SCRIPT_PATH = "/usr/local/sbin/toolbox-host-setup";
/** Written last by the setup script; cloud-init's own status is what callers wait on. */
const READY_MARKER_DIR = "/var/lib/toolbox";
const READY_MARKER_PATH = `${READY_MARKER_DIR}/host-ready`;

/** Docker reads this on its first start: write_files runs before packages are installed. */
function daemonJson(o: ResolvedOptions): string {
  const config = {
    // Containers keep running while dockerd restarts (e.g. an unattended docker.io upgrade).
    "live-restore": true,
    "log-driver": "json-file",
    "log-opts": { "max-size": o.logRotation.maxSize, "max-file": String(o.logRotation.maxFile) },
    "no-new-privileges": true,
    // Published ports are DNAT'd (seen by DOCKER-USER), no docker-proxy process per port.
    "userland-proxy": false,
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** sshd takes the first value it reads and includes sshd_config.d first: this file sorts first. */
const SSHD_DROP_IN = `# Agentopia toolbox: root by key only, the pinned ed25519 host key only.
HostKey /etc/ssh/ssh_host_ed25519_key
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PermitRootLogin prohibit-password
# cloud-init locks root's password; with PAM, sshd still admits root by key.
UsePAM yes
X11Forwarding no
AllowAgentForwarding no
MaxAuthTries 3
`;

function sysctlConf(o: ResolvedOptions): string {
  const lines = [
    "# Docker's bridges pass through iptables, so same-bridge traffic meets DOCKER-USER too.",
    "net.bridge.bridge-nf-call-iptables = 1",
    "net.bridge.bridge-nf-call-ip6tables = 1",
  ];
  if (o.swapMb > 0) {
    lines.push(
      "# Swap is a safety net for a 512 MB droplet, not working memory.",
      "vm.swappiness = 10",
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The br_netfilter module must be loaded before the bridge sysctls exist. */
const MODULES_LOAD = "br_netfilter\n";

/** Ubuntu's standard switch for unattended-upgrades (the same text its debconf writes). */
const AUTO_UPGRADES = `APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
`;

/** Read after 50unattended-upgrades: security pockets only, never a reboot under running tools. */
const SECURITY_ONLY = `// Agentopia toolbox: security updates only.
#clear Unattended-Upgrade::Allowed-Origins;
#clear Unattended-Upgrade::Origins-Pattern;
Unattended-Upgrade::Allowed-Origins {
  "\${distro_id}:\${distro_codename}-security";
  "\${distro_id}ESMApps:\${distro_codename}-apps-security";
  "\${distro_id}ESM:\${distro_codename}-infra-security";
};
Unattended-Upgrade::Automatic-Reboot "false";
`;

/** Runs once, from runcmd, after the packages are installed. Any failure fails cloud-init. */
const SETUP_SCRIPT = `#!/bin/bash
# First-boot setup of an Agentopia toolbox host. Rendered by cloud-init/hostFiles.ts.
set -euo pipefail

modprobe br_netfilter
sysctl --quiet --system

# The hardening drop-in and the pinned host key were written before sshd may have started.
# (Socket-activated sshd creates /run/sshd only on its first start; sshd -t needs it.)
install -d -m 0755 /run/sshd
sshd -t
systemctl try-reload-or-restart ssh.service

systemctl daemon-reload
systemctl enable docker.service ${FIREWALL_UNIT_NAME}
# A restart proves the wiring: the drop-in applies the rules before dockerd, the unit after it.
systemctl restart docker.service
systemctl is-active --quiet ${FIREWALL_UNIT_NAME}
${FIREWALL_SCRIPT_PATH} verify

systemctl enable --now apt-daily.timer apt-daily-upgrade.timer

install -d -m 0755 ${READY_MARKER_DIR}
touch ${READY_MARKER_PATH}
`;

/** Every file the host needs, in the order cloud-init writes them. */
export function hostFiles(o: ResolvedOptions): HostFile[] {
  return [
    { path: "/etc/docker/daemon.json", permissions: "0644", content: daemonJson(o) },
    {
      path: "/etc/ssh/sshd_config.d/01-toolbox-hardening.conf",
      permissions: "0644",
      content: SSHD_DROP_IN,
    },
    { path: "/etc/sysctl.d/60-toolbox.conf", permissions: "0644", content: sysctlConf(o) },
    { path: "/etc/modules-load.d/toolbox.conf", permissions: "0644", content: MODULES_LOAD },
    { path: "/etc/apt/apt.conf.d/20auto-upgrades", permissions: "0644", content: AUTO_UPGRADES },
    {
      path: "/etc/apt/apt.conf.d/52toolbox-security-only",
      permissions: "0644",
      content: SECURITY_ONLY,
    },
    { path: FIREWALL_SCRIPT_PATH, permissions: "0755", content: firewallScript(o) },
    {
      path: `/etc/systemd/system/${FIREWALL_UNIT_NAME}`,
      permissions: "0644",
      content: FIREWALL_UNIT,
    },
    {
      path: "/etc/systemd/system/docker.service.d/10-toolbox-firewall.conf",
      permissions: "0644",
      content: DOCKER_DROP_IN,
    },
    { path: SETUP_SCRIPT_PATH, permissions: "0755", content: SETUP_SCRIPT },
  ];
}
