/** Image references as the stack configs, the service's settings and the policy pack read them. */

/** `registry/name:tag` or `registry/name@sha256:<64 hex>`. */
export const IMAGE_REFERENCE =
  /^[a-z0-9]+(?:[._/:-][a-z0-9]+)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
export const IMAGE_REFERENCE_RULE =
  "must be an image reference such as ghcr.io/org/dtma:1.2.3 or ghcr.io/org/dtma@sha256:<digest>";

/** A reference pinned by digest: `name@sha256:<64 hex>`. */
export const DIGEST_PINNED = /@sha256:[a-f0-9]{64}$/;
/** Pinned, or a local image id `sha256:<digest>` (what a container's `image` input holds). */
export const CONTENT_ADDRESSED = /(?:@|^)sha256:[a-f0-9]{64}$/;
export const DIGEST_PIN_RULE = "must be pinned by digest (…@sha256:<64 hex>)";

/** The images the local target uses unless told otherwise (`npm run images:local` builds them). */
export const LOCAL_IMAGES = {
  dtma: "agentopia/dtma:local",
  backend: "agentopia/backend:local",
} as const;
