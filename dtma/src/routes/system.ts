import type { Metrics } from "../metrics";
import { preparedReply, type Route } from "@agentopia-toolboxes/servicekit/http";
import type { StatusSampler } from "../status/sampler";

const JSON_TYPE = "application/json; charset=utf-8";
const HEALTH = preparedReply(JSON.stringify({ status: "ok" }), JSON_TYPE);

export function systemRoutes(deps: { sampler: StatusSampler; metrics: Metrics }): Route[] {
  return [
    // No token and no version: the container health check and the component call it.
    {
      method: "GET",
      path: "/health",
      auth: "none",
      handler: () => HEALTH,
    },
    {
      method: "GET",
      path: "/status",
      // Built once per background sample (body, Content-Length, ETag); If-None-Match gets a 304.
      handler: () => deps.sampler.reply,
    },
    {
      method: "GET",
      path: "/metrics",
      handler: () => ({
        status: 200,
        body: deps.metrics.render(),
        contentType: "text/plain; version=0.0.4; charset=utf-8",
      }),
    },
  ];
}
