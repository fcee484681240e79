// The gateway's own `initialize` toward a server: what it sends (no client capabilities, so a
// server never sends it requests it could not route) and which answers it accepts.
import { bounded, isObject } from "./jsonrpc";
import type { CallOutcome, InitializeResult, JsonObject } from "./types";
import { ErrorCodes } from "./types";

/** The name the gateway gives itself in its own `initialize` (servers see this, never an agent). */
const GATEWAY_CLIENT_NAME = "agentopia-toolbox-gateway";
/** The version the gateway asks for; the server may answer an older one it supports. */
const GATEWAY_PROTOCOL_VERSION = "2025-11-25";
/** The sessionful-era versions a lane accepts in the server's InitializeResult. */
const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = [
  "2025-11-25",
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
  "2024-10-07",
];

/** The params of the gateway's `initialize`; `clientVersion` is its `clientInfo.version`. */
export function initializeParams(clientVersion = "0.1.0"): JsonObject {
  return {
    protocolVersion: GATEWAY_PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: { name: GATEWAY_CLIENT_NAME, version: clientVersion },
  };
}

function validInitializeResult(value: JsonObject): value is InitializeResult {
  const info = value.serverInfo;
  return (
    typeof value.protocolVersion === "string" &&
    isObject(value.capabilities) &&
    isObject(info) &&
    typeof info.name === "string" &&
    typeof info.version === "string" &&
    (value.instructions === undefined || typeof value.instructions === "string")
  );
}

/** The server's InitializeResult, or why the handshake failed (`timeoutMs`: what it waited). */
export function acceptInitialize(
  outcome: CallOutcome,
  timeoutMs: number,
): InitializeResult | string {
  if ("error" in outcome) {
    if (outcome.error.code === ErrorCodes.RequestTimeout)
      return `the server did not answer initialize within ${timeoutMs} ms`;
    return `initialize failed: ${bounded(outcome.error.message)}`;
  }
  if (!validInitializeResult(outcome.result)) return "the server's initialize result is malformed";
  if (!SUPPORTED_PROTOCOL_VERSIONS.includes(outcome.result.protocolVersion))
    return `the server answered an unsupported protocol version (${bounded(outcome.result.protocolVersion, 40)})`;
  return outcome.result;
}
