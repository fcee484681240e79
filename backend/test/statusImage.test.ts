/**
 * The backend reports the image it runs (issue 11): the container spec passes BACKEND_IMAGE and
 * GET /status carries it as `image`, beside `version` and `status`, for a fleet upgrade's
 * health proof.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ConfigError, loadConfig } from "../src/config";

const token = () => randomBytes(32).toString("base64url");
const base = () => ({
  INTERNAL_API_SECRET: token(),
  AGENT_GATEWAY_TOKEN: token(),
  DTMA_BEARER_TOKEN: token(),
});

describe("the backend reports the image it runs", () => {
  it("BACKEND_IMAGE is read, and refused when it is not an image reference", () => {
    assert.equal(
      loadConfig({ ...base(), BACKEND_IMAGE: "agentopia/backend:v2" }).image,
      "agentopia/backend:v2",
    );
    assert.equal(loadConfig(base()).image, undefined);
    assert.throws(() => loadConfig({ ...base(), BACKEND_IMAGE: "a b" }), ConfigError);
  });
});
