import type {
  ResourceValidation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidation,
  StackValidationPolicy,
} from "@pulumi/policy";

/** A resource policy whose single validation tests can call directly. */
export type ResourcePolicy = ResourceValidationPolicy & { validateResource: ResourceValidation };
/** A stack policy whose validation tests can call directly. */
export type StackPolicy = StackValidationPolicy & { validateStack: StackValidation };

/**
 * The policy's config over its defaults. The CLI fills schema defaults too, but applying them
 * here keeps a policy correct however it is invoked (tests, `npm run plan`, older CLIs).
 */
export function configOf<T extends object>(
  args: Pick<ResourceValidationArgs, "getConfig">,
  defaults: T,
): T {
  return { ...defaults, ...args.getConfig<Partial<T>>() };
}
