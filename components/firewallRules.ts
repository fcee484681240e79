/**
 * The toolbox's cloud firewall, as pure data so it can be property-tested without mocks.
 *
 * Inbound: SSH from the control plane only; the backend port from the control plane, or from
 * anywhere when its ingress is `public` (it speaks only TLS then); ICMP from anywhere (path MTU
 * discovery, diagnostics); the DTMA port is never listed. Outbound: open, except SMTP (25),
 * which a toolbox has no reason to send and which spammers' tools would.
 */
import { BACKEND_PORT, SSH_PORT, type BackendIngress } from "@agentopia-toolboxes/contract";

export interface CloudFirewallRule {
  protocol: "tcp" | "udp" | "icmp";
  /** Undefined for ICMP. */
  portRange?: string;
  addresses: string[];
}

export const WORLD = ["0.0.0.0/0", "::/0"];
export const SMTP_PORT = 25;

export function inboundRules(
  controlPlaneCidrs: readonly string[],
  backendIngress: BackendIngress = "controlPlane",
): CloudFirewallRule[] {
  const backendSources = backendIngress === "public" ? WORLD : controlPlaneCidrs;
  return [
    { protocol: "tcp", portRange: String(SSH_PORT), addresses: [...controlPlaneCidrs] },
    { protocol: "tcp", portRange: String(BACKEND_PORT), addresses: [...backendSources] },
    { protocol: "icmp", addresses: [...WORLD] },
  ];
}

export function outboundRules(): CloudFirewallRule[] {
  return [
    { protocol: "tcp", portRange: `1-${SMTP_PORT - 1}`, addresses: [...WORLD] },
    { protocol: "tcp", portRange: `${SMTP_PORT + 1}-65535`, addresses: [...WORLD] },
    { protocol: "udp", portRange: "1-65535", addresses: [...WORLD] },
    { protocol: "icmp", addresses: [...WORLD] },
  ];
}
