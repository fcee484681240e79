import ipaddr from "ipaddr.js";
import type { Logger } from "pino";
import { rangesOverlap, type AddressRange } from "@agentopia-toolboxes/contract/network";
import { HttpError } from "@agentopia-toolboxes/servicekit/http";
import { DockerError, type DockerEngine } from "../docker/engine";
import { LABEL, MANAGED_BY } from "./labels";

// One bridge network per egress tool (issue 13, item 4; docs/decisions/0026). A tool reaches
// the outside world through its own bridge, and the only other member of that bridge is the
// gateway (the backend container, DTMA_GATEWAY_CONTAINER), which the DTMA connects to it. Docker
// isolates bridges from each other, so a tool reaches no other tool, nor the DTMA or anything
// else on the control network. On droplets the subnets come from DTMA_TOOL_SUBNET_POOL (inside
// TOOLS_SUBNET, which the host firewall names); elsewhere Docker chooses. The network goes with
// the tool. Docker is the truth: networks carry the DTMA's labels and nothing is kept in memory
// but the allocation in progress.

export interface ToolNetworksDeps {
  docker: DockerEngine;
  log: Logger;
  scope: string;
  account?: string;
  /** Name prefix of the networks (DTMA_TOOL_NETWORK): `<prefix>.<tool>`. */
  prefix: string;
  /** DTMA_TOOL_SUBNET_POOL and the prefix length of each tool's subnet; none: Docker's choice. */
  pool?: { cidr: string; prefixLength: number };
  /** The gateway's container name (DTMA_GATEWAY_CONTAINER); none: nothing is connected. */
  gateway?: string;
}

export class ToolNetworks {
  /** Network creation is serialized: two allocations never pick the same subnet. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ToolNetworksDeps) {}

  name(tool: string): string {
    return `${this.deps.prefix}.${tool}`;
  }

  private labels(): string[] {
    return [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.scope}=${this.deps.scope}`];
  }

  /** The tool's network exists, with the gateway connected to it. */
  async ensure(tool: string): Promise<string> {
    const name = this.name(tool);
    if (!(await this.deps.docker.inspectNetwork(name))) {
      await this.serialized(() => this.create(tool, name));
    }
    await this.connectGateway(name);
    return name;
  }

  /** Removes the tool's network, after disconnecting the gateway from it. */
  async remove(tool: string): Promise<void> {
    const name = this.name(tool);
    if (!(await this.deps.docker.inspectNetwork(name))) return;
    if (this.deps.gateway) await this.deps.docker.disconnectNetwork(name, this.deps.gateway);
    await this.deps.docker.removeNetwork(name);
    this.deps.log.info({ tool, network: name }, "removed the tool's network");
  }

  /**
   * Connects the gateway to every tool network it is missing from (it was recreated, or it
   * started after the tools): run at start and with every status sample.
   */
  async reconcile(): Promise<void> {
    const { docker, gateway } = this.deps;
    if (!gateway) return;
    const container = await docker.inspectContainer(gateway);
    if (!container) return;
    const joined = new Set(Object.keys(container.NetworkSettings.Networks));
    for (const n of await docker.listNetworks(this.labels())) {
      if (!joined.has(n.Name)) await this.connectGateway(n.Name);
    }
  }

  private async connectGateway(network: string): Promise<void> {
    const { docker, gateway, log } = this.deps;
    if (!gateway) return;
    try {
      await docker.connectNetwork(network, gateway);
    } catch (err) {
      // The gateway not there yet: reconcile() connects it once it is.
      if (err instanceof DockerError && err.statusCode === 404) {
        log.warn({ network, gateway }, "the gateway container is not there to connect");
        return;
      }
      throw err;
    }
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async create(tool: string, name: string): Promise<void> {
    const { docker, log } = this.deps;
    if (await docker.inspectNetwork(name)) return;
    const labels = {
      [LABEL.managedBy]: MANAGED_BY,
      [LABEL.scope]: this.deps.scope,
      [LABEL.toolName]: tool,
      ...(this.deps.account ? { [LABEL.account]: this.deps.account } : {}),
    };
    const subnet = this.deps.pool ? await this.freeSubnet() : undefined;
    try {
      await docker.createNetwork(name, labels, subnet);
    } catch (err) {
      // Another DTMA process (a restart race) created it first.
      if (!(err instanceof DockerError && err.statusCode === 409)) throw err;
    }
    log.info(
      { tool, network: name, subnet: subnet ?? "docker's choice" },
      "created the tool's network",
    );
  }

  /** The first block of the pool that overlaps no network of the daemon. */
  private async freeSubnet(): Promise<string> {
    const { cidr, prefixLength } = this.deps.pool!;
    const [base, bits] = ipaddr.parseCIDR(cidr) as [ipaddr.IPv4, number];
    const used: AddressRange[] = [];
    for (const n of await this.deps.docker.listNetworks()) {
      for (const c of n.IPAM.Config ?? []) {
        if (c.Subnet && ipaddr.isValidCIDR(c.Subnet)) {
          const [address, prefix] = ipaddr.parseCIDR(c.Subnet);
          used.push({ address, prefix });
        }
      }
    }
    const size = 2 ** (32 - prefixLength);
    const start = ipv4Number(base) - (ipv4Number(base) % 2 ** (32 - bits));
    const blocks = 2 ** (prefixLength - bits);
    for (let i = 0; i < blocks; i++) {
      const block = {
        address: ipaddr.IPv4.parse(ipv4Text(start + i * size)),
        prefix: prefixLength,
      };
      if (!used.some((range) => rangesOverlap(block, range))) {
        return `${block.address.toString()}/${prefixLength}`;
      }
    }
    throw new HttpError(
      507,
      "tool_subnets_exhausted",
      `DTMA_TOOL_SUBNET_POOL ${cidr} has no free /${prefixLength} left for another egress tool`,
      "network",
    );
  }
}

function ipv4Number(ip: ipaddr.IPv4): number {
  return ip.octets.reduce((n, o) => n * 256 + o, 0);
}

function ipv4Text(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}
