import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

export interface RotatingTokenArgs {
  /**
   * Bump to rotate. The token of the generation before stays available as `previous`, so a
   * service can accept both while its callers move over. Default 0.
   */
  generation?: pulumi.Input<number>;
  /** Characters in the token (alphanumeric, ~5.95 bits each). Default 64 (≈ 381 bits). */
  length?: number;
}

/** Alphanumeric tokens need this many characters for at least 256 bits of entropy. */
const MIN_TOKEN_LENGTH = 43;

/**
 * A token that rotates without losing the one before it.
 *
 * Two random slots take turns: slot A is regenerated when the generation becomes odd, slot B
 * when it becomes even, so a rotation rewrites only the slot that held the older token. The
 * current token is the slot rewritten last; the previous one is the other slot (none at
 * generation 0). Both are secrets.
 */
export class RotatingToken extends pulumi.ComponentResource {
  public readonly current: pulumi.Output<string>;
  public readonly previous: pulumi.Output<string>;

  constructor(name: string, args: RotatingTokenArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agentopia:toolbox:RotatingToken", name, {}, opts);
    const length = args.length ?? 64;
    if (length < MIN_TOKEN_LENGTH) {
      throw new pulumi.ResourceError(
        `length: ${length} characters give fewer than 256 bits; use at least ${MIN_TOKEN_LENGTH}`,
        this,
      );
    }
    const generation = pulumi.output(args.generation ?? 0);
    const slot = (suffix: string, keeper: (g: number) => number) =>
      new random.RandomPassword(
        `${name}-${suffix}`,
        {
          length,
          special: false,
          keepers: { generation: generation.apply((g) => String(keeper(g))) },
        },
        { parent: this },
      );
    const a = slot("a", (g) => Math.ceil(g / 2));
    const b = slot("b", (g) => Math.floor(g / 2));

    this.current = pulumi.secret(
      pulumi.all([generation, a.result, b.result]).apply(([g, ra, rb]) => (g % 2 === 1 ? ra : rb)),
    );
    this.previous = pulumi.secret(
      pulumi
        .all([generation, a.result, b.result])
        .apply(([g, ra, rb]) => (g === 0 ? "" : g % 2 === 1 ? rb : ra)),
    );
    this.registerOutputs({ current: this.current, previous: this.previous });
  }
}
