import type { StreamSource } from "./eventStreams";

/**
 * An operation's events, notified by migration 7's triggers (the payload is the operation's id);
 * its stream ends once the operation succeeded or failed.
 */
export const OPERATION_EVENTS: StreamSource = {
  name: "operation",
  operations: "toolbox_operations",
  events: "toolbox_operation_events",
  final: "o.status in ('succeeded', 'failed')",
  channel: "agentopia_toolbox_operation_events",
};
