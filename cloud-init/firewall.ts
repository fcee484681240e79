import type { ResolvedOptions } from "./options";

export const FIREWALL_SCRIPT_PATH = "/usr/local/sbin/toolbox-firewall";
export const FIREWALL_UNIT_NAME = "toolbox-firewall.service";

/** One iptables rule: the chain it is appended to and its match/target words. */
interface IptablesRule {
  chain: "DOCKER-USER" | "TOOLBOX-INPUT";
  spec: string;
  /** Why the rule exists (rendered as a comment in the script). */
  why: string;
}

/** Metadata (169.254.169.254) and the rest of link-local: nothing a container may need there. */
const LINK_LOCAL = "169.254.0.0/16";

/**
 * IPv4 rules. DOCKER-USER sees every forwarded packet after Docker's DNAT, before Docker's own
 * rules; TOOLBOX-INPUT is jumped to first from INPUT and sees what containers send to the host.
 */
function ipv4Rules(o: ResolvedOptions): IptablesRule[] {
  const tools = o.toolsSubnet.text;
  const control = o.controlSubnet.text;
  return [
    {
      chain: "DOCKER-USER",
      spec: `-d ${LINK_LOCAL} -j REJECT`,
      why: "containers never reach the metadata service (user-data, host key) or link-local",
    },
    {
      chain: "DOCKER-USER",
      spec: `-s ${tools} -p tcp --dport ${o.dtmaPort} -j REJECT`,
      why: "tools never reach the DTMA port, wherever it listens",
    },
    {
      chain: "DOCKER-USER",
      spec: `-s ${tools} -d ${control} -j REJECT`,
      why: "tools never reach the control network (DTMA, backend), published ports included",
    },
    {
      chain: "DOCKER-USER",
      spec: `! -s ${control} -d ${control} -p tcp --dport ${o.dtmaPort} -j REJECT`,
      why: "only the control network reaches the DTMA, even if its port were published",
    },
    ...hostInputRules(),
    { chain: "TOOLBOX-INPUT", spec: `-s ${tools} -j REJECT`, why: "tools never reach the host" },
    {
      chain: "TOOLBOX-INPUT",
      spec: `-s ${control} -j REJECT`,
      why: "nor do the control containers",
    },
  ];
}

/** IPv6: no metadata service and no IPv6 control subnet, so only host and DTMA rules apply. */
function ipv6Rules(o: ResolvedOptions): IptablesRule[] {
  return [
    {
      chain: "DOCKER-USER",
      spec: `-p tcp --dport ${o.dtmaPort} -j REJECT`,
      why: "the DTMA is never reached over IPv6",
    },
    ...hostInputRules(),
  ];
}

function hostInputRules(): IptablesRule[] {
  return [
    {
      chain: "TOOLBOX-INPUT",
      spec: "-i lo -j RETURN",
      why: "the host talking to itself (e.g. to a bridge address) is not a container",
    },
    {
      chain: "TOOLBOX-INPUT",
      spec: "-m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
      why: "replies to connections the host opened",
    },
    {
      chain: "TOOLBOX-INPUT",
      spec: "-i docker0 -j REJECT",
      why: "containers on the default bridge never reach the host",
    },
    {
      chain: "TOOLBOX-INPUT",
      spec: "-i br-+ -j REJECT",
      why: "containers on user-defined bridges never reach the host",
    },
  ];
}

/** iptables-restore input: declaring a chain with --noflush replaces just that chain, atomically. */
function restoreInput(rules: IptablesRule[]): string {
  const lines = ["*filter", ":DOCKER-USER - [0:0]", ":TOOLBOX-INPUT - [0:0]"];
  for (const rule of rules) lines.push(`# ${rule.why}`, `-A ${rule.chain} ${rule.spec}`);
  return [...lines, "COMMIT"].join("\n");
}

/**
 * The script that installs the rules. Idempotent; `apply` runs before dockerd starts (so no
 * restarted container runs unfiltered) and again after every Docker (re)start; `verify` exits
 * non-zero unless every rule and jump is in place.
 */
export function firewallScript(o: ResolvedOptions): string {
  return `#!/bin/bash
# Host firewall of an Agentopia toolbox: containers cannot reach the metadata service,
# the host itself or the DTMA port. Rendered by cloud-init/firewall.ts.
set -euo pipefail

rules_v4() {
  cat <<'EOF'
${restoreInput(ipv4Rules(o))}
EOF
}

rules_v6() {
  cat <<'EOF'
${restoreInput(ipv6Rules(o))}
EOF
}

# Puts "-j TARGET" first in CHAIN, exactly once.
jump_first() {
  local cmd=$1 chain=$2 target=$3
  if [[ "$("$cmd" -S "$chain" | sed -n 2p)" != "-A $chain -j $target" ]]; then
    while "$cmd" -D "$chain" -j "$target" 2>/dev/null; do :; done
    "$cmd" -I "$chain" 1 -j "$target"
  fi
}

apply() {
  local cmd=$1 rules=$2
  "$cmd-restore" --noflush <<<"$rules"
  jump_first "$cmd" INPUT TOOLBOX-INPUT
  # Docker inserts this jump too when it starts; before that it keeps FORWARD harmless.
  jump_first "$cmd" FORWARD DOCKER-USER
}

verify() {
  local cmd=$1 rules=$2 line
  local -a words
  for chain_target in INPUT:TOOLBOX-INPUT FORWARD:DOCKER-USER; do
    local chain=\${chain_target%%:*} target=\${chain_target##*:}
    if [[ "$("$cmd" -S "$chain" | sed -n 2p)" != "-A $chain -j $target" ]]; then
      echo "toolbox-firewall: $cmd $chain does not start with -j $target" >&2
      return 1
    fi
  done
  while IFS= read -r line; do
    [[ $line == "-A "* ]] || continue
    read -r -a words <<<"$line"
    words[0]=-C
    if ! "$cmd" "\${words[@]}" 2>/dev/null; then
      echo "toolbox-firewall: missing $cmd rule: $line" >&2
      return 1
    fi
  done <<<"$rules"
}

action=\${1:-apply}
case $action in
  apply | verify) ;;
  *)
    echo "usage: $0 [apply|verify]" >&2
    exit 2
    ;;
esac

"$action" iptables "$(rules_v4)"
# Metadata is IPv4-only; the host and DTMA rules also hold for IPv6 where the kernel has it.
if [[ -e /proc/net/if_inet6 ]]; then
  "$action" ip6tables "$(rules_v6)"
fi
`;
}

/** Re-applies the rules after every Docker (re)start: Docker rewrites its own chains then. */
export const FIREWALL_UNIT = `[Unit]
Description=Toolbox firewall: containers cannot reach the metadata service, the host or the DTMA
After=docker.service
PartOf=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${FIREWALL_SCRIPT_PATH} apply

[Install]
WantedBy=docker.service
`;

/**
 * Applies the rules before dockerd starts (containers with a restart policy start with it, so
 * the rules must already be there), and pulls in the re-applying unit. If the rules cannot be
 * applied, Docker does not start: fail closed.
 */
export const DOCKER_DROP_IN = `[Unit]
Wants=${FIREWALL_UNIT_NAME}

[Service]
ExecStartPre=${FIREWALL_SCRIPT_PATH} apply
`;
