import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ContainerSpec, ToolboxContainers as Specs } from "./containerSpecs";

export interface ToolboxContainersArgs {
  /** The container definitions from `toolboxContainers()`. Required. */
  specs: Specs<pulumi.Output<string>>;
  /** The Docker provider for the toolbox host (SSH to the droplet, or the local daemon). Required. */
  provider: docker.Provider;
  /** What the containers wait for (the readiness gate on a droplet). Default none. */
  dependsOn?: pulumi.Resource[];
  /** Delete with this resource instead of one by one (the droplet). Default none. */
  deletedWith?: pulumi.Resource;
}

/** Docker's `K=V` list; secret values keep the whole list secret. */
function envList(spec: ContainerSpec<pulumi.Output<string>>): pulumi.Output<string[]> {
  const plain = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  const secret = Object.entries(spec.secretEnv).map(([k, v]) => pulumi.interpolate`${k}=${v}`);
  return pulumi.secret(pulumi.all(secret).apply((s) => [...plain, ...s]));
}

/**
 * The resident containers of one toolbox and their networks, declared from the pure specs so
 * that Pulumi and the local end-to-end harness run the same definitions.
 */
export class ToolboxContainers extends pulumi.ComponentResource {
  public readonly dtma: docker.Container;
  public readonly backend: docker.Container;
  /** The host port the backend is published on (chosen by Docker when the spec says 0). */
  public readonly backendPort: pulumi.Output<number>;

  constructor(name: string, args: ToolboxContainersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agentopia:toolbox:ToolboxContainers", name, {}, opts);
    const base: pulumi.CustomResourceOptions = {
      parent: this,
      provider: args.provider,
      dependsOn: args.dependsOn,
      deletedWith: args.deletedWith,
    };

    const networks = args.specs.networks.map(
      (n) =>
        new docker.Network(
          `${name}-net-${n.key}`,
          {
            name: n.name,
            driver: "bridge",
            ipamConfigs: n.subnet ? [{ subnet: n.subnet }] : undefined,
            labels: Object.entries(n.labels).map(([label, value]) => ({ label, value })),
          },
          base,
        ),
    );

    const container = (spec: ContainerSpec<pulumi.Output<string>>) => {
      const image = new docker.RemoteImage(
        `${name}-image-${spec.role}`,
        // Kept on the host: other toolboxes' stacks and restarts reuse the layers.
        { name: spec.image, keepLocally: true },
        base,
      );
      return new docker.Container(
        `${name}-${spec.role}`,
        {
          name: spec.name,
          image: image.imageId,
          envs: envList(spec),
          // External port 0: Docker chooses one (several toolboxes on one local daemon).
          ports: spec.ports.map((p) => ({
            ...p,
            external: p.external === 0 ? undefined : p.external,
          })),
          volumes: spec.mounts.map((m) => ({
            hostPath: m.hostPath,
            containerPath: m.containerPath,
            readOnly: m.readOnly,
          })),
          networksAdvanced: spec.networks.map((n) => ({ name: n.name, aliases: n.aliases })),
          healthcheck: {
            tests: spec.healthcheck.test,
            interval: spec.healthcheck.interval,
            timeout: spec.healthcheck.timeout,
            startPeriod: spec.healthcheck.startPeriod,
            retries: spec.healthcheck.retries,
          },
          memory: spec.memoryMb,
          memorySwap: spec.memoryMb,
          groupAdds: spec.groupAdd,
          hosts: Object.entries(spec.extraHosts).map(([host, ip]) => ({ host, ip })),
          restart: spec.restart,
          init: spec.init,
          readOnly: spec.readOnlyRootfs,
          tmpfs: spec.tmpfs,
          capabilities: { drops: spec.capDrop },
          securityOpts: spec.securityOpts,
          logDriver: "json-file",
          logOpts: spec.logOpts,
          labels: Object.entries(spec.labels).map(([label, value]) => ({ label, value })),
          // Wait for the health check before the stack counts the container as created.
          wait: true,
          waitTimeout: 120,
        },
        {
          ...base,
          dependsOn: [...(args.dependsOn ?? []), ...networks],
          // The DTMA connects the backend to each tool's own network (decision 0026); a
          // refresh sees those as drift, which must not replace the gateway.
          ...(spec.role === "backend" && { ignoreChanges: ["networksAdvanced"] }),
        },
      );
    };

    this.dtma = container(args.specs.dtma);
    this.backend = container(args.specs.backend);
    const internal = args.specs.backend.ports[0]?.internal;
    this.backendPort = this.backend.ports.apply((ports) => {
      const port = ports?.find((p) => p.internal === internal)?.external;
      if (port === undefined) throw new Error(`the backend publishes no port for ${internal}`);
      return port;
    });
    this.registerOutputs({
      dtma: this.dtma.name,
      backend: this.backend.name,
      backendPort: this.backendPort,
    });
  }
}
