/**
 * The platform's `toolboxProfile` (what program/operator.ts exports for account stacks) against
 * the service's settings, at start-up, where the engine can read the platform stack's outputs:
 * a setting left unset is taken from the profile; one set to something the profile does not
 * allow is one line naming it (the service then refuses to start). Where the outputs cannot be
 * read (no CLI, no stack yet), the settings stand as they are and the program checks each stack.
 */
import {
  ALLOWED_REGIONS,
  ALLOWED_SIZES,
  DIGEST_PIN_RULE,
  DIGEST_PINNED,
} from "@agentopia-toolboxes/contract";
import type { Logger } from "pino";
import { z } from "zod";
import type { Settings } from "../config";
import type { ToolboxEngine } from "../engine/types";

const profileSchema = z.object({
  regions: z.array(z.string()).min(1),
  sizes: z.array(z.string()).min(1),
  requireDigestPins: z.boolean(),
});

type ProfiledSettings = Pick<
  Settings,
  | "allowedRegions"
  | "allowedSizes"
  | "defaultRegion"
  | "defaultSize"
  | "requireDigestPins"
  | "dtmaImage"
  | "backendImage"
  | "platformStack"
>;

export interface ProfileCheck<S> {
  settings: S;
  /** One line per mismatched setting, `NAME: why`. */
  problems: string[];
  /** Settings taken from the profile, for the start-up log. */
  taken: string[];
}

/**
 * `env` says which settings were given (the others were defaults and may be taken from the
 * profile); `profile` is the platform stack's `toolboxProfile` output.
 */
export function applyProfile<S extends ProfiledSettings>(
  env: NodeJS.ProcessEnv,
  settings: S,
  profile: unknown,
): ProfileCheck<S> {
  const given = (name: string) => (env[name] ?? "").trim() !== "";
  const parsed = profileSchema.safeParse(profile);
  if (!parsed.success) {
    return {
      settings,
      problems: [
        `PLATFORM_STACK: ${settings.platformStack} exports no valid toolboxProfile; run pulumi up on it`,
      ],
      taken: [],
    };
  }
  const p = parsed.data;
  const problems: string[] = [];
  const taken: string[] = [];
  const next = { ...settings };
  const list = (
    name: "ALLOWED_REGIONS" | "ALLOWED_SIZES",
    key: "allowedRegions" | "allowedSizes",
    offered: string[],
    packDefault: readonly string[],
    what: string,
  ) => {
    if (given(name)) {
      const extra = settings[key].filter((v) => !offered.includes(v));
      if (extra.length > 0) {
        problems.push(
          `${name}: ${extra.join(", ")} not in the platform's toolboxProfile ${what} (${offered.join(", ")})`,
        );
      }
      return;
    }
    const both = offered.filter((v) => packDefault.includes(v));
    if (both.length === 0) {
      problems.push(
        `${name}: the platform offers ${offered.join(", ")}, none of which the pack allows by default; set ${name}`,
      );
      return;
    }
    next[key] = both;
    taken.push(name);
  };
  list("ALLOWED_REGIONS", "allowedRegions", p.regions, ALLOWED_REGIONS, "regions");
  list("ALLOWED_SIZES", "allowedSizes", p.sizes, ALLOWED_SIZES, "sizes");
  const fallback = (
    name: "DEFAULT_REGION" | "DEFAULT_SIZE",
    key: "defaultRegion" | "defaultSize",
    allowed: readonly string[],
  ) => {
    if (allowed.includes(next[key])) return;
    if (given(name))
      problems.push(
        `${name}: must be one of ${allowed.join(", ")} (the platform's toolboxProfile)`,
      );
    else {
      next[key] = allowed[0];
      taken.push(name);
    }
  };
  if (problems.length === 0) {
    fallback("DEFAULT_REGION", "defaultRegion", next.allowedRegions);
    fallback("DEFAULT_SIZE", "defaultSize", next.allowedSizes);
  }
  if (p.requireDigestPins && !settings.requireDigestPins) {
    if (given("REQUIRE_DIGEST_PINS")) {
      problems.push("REQUIRE_DIGEST_PINS: the platform's toolboxProfile requires pins; set 1");
    } else {
      next.requireDigestPins = true;
      taken.push("REQUIRE_DIGEST_PINS");
    }
  }
  if (next.requireDigestPins) {
    for (const [name, value] of [
      ["DTMA_IMAGE", next.dtmaImage],
      ["BACKEND_IMAGE", next.backendImage],
    ] as const) {
      if (value !== undefined && !DIGEST_PINNED.test(value)) {
        problems.push(`${name}: ${DIGEST_PIN_RULE} (the platform's toolboxProfile requires pins)`);
      }
    }
  }
  return { settings: next, problems, taken };
}

/**
 * The platform stack's `toolboxProfile` through the engine, or undefined (with the reason
 * logged) when it cannot be read: no CLI, no such stack yet, no profile exported.
 */
export async function readPlatformProfile(
  engine: Pick<ToolboxEngine, "stackOutputs">,
  platformStack: string,
  log: Pick<Logger, "warn">,
): Promise<unknown> {
  try {
    const outputs = await engine.stackOutputs(platformStack);
    if (outputs?.toolboxProfile === undefined) {
      log.warn(
        { platformStack },
        "the platform stack exports no toolboxProfile (yet): the settings are taken as they are",
      );
      return undefined;
    }
    return outputs.toolboxProfile;
  } catch (err) {
    log.warn(
      { platformStack, reason: (err as Error).message.split("\n")[0] },
      "the platform's toolboxProfile could not be read: the settings are taken as they are",
    );
    return undefined;
  }
}
