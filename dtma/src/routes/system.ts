import type { Metrics } from "../metrics";
import {
  metricsRoute,
  preparedReply,
  type Reply,
  type Route,
} from "@agentopia-toolboxes/servicekit/http";
import type { DockerProbe } from "../status/dockerProbe";
import type { StatusSampler } from "../status/sampler";

const JSON_TYPE = "application/json; charset=utf-8";
const HEALTH = preparedReply(JSON.stringify({ status: "ok" }), JSON_TYPE);
const unhealthy = (docker: string): Reply => ({
  ...preparedReply(JSON.stringify({ status: "unavailable", docker }), JSON_TYPE),
  status: 503,
});
const UNHEALTHY = { stalled: unhealthy("stalled"), unreachable: unhealthy("unreachable") };

export function systemRoutes(deps: {
  sampler: StatusSampler;
  metrics: Metrics;
  probe: DockerProbe;
}): Route[] {
  return [
    // No token and no version: the container health check and the component call it. 503 while
    // the Docker connection is stalled or down.
    {
      method: "GET",
      path: "/health",
      auth: "none",
      handler: () => (deps.probe.state === "ok" ? HEALTH : UNHEALTHY[deps.probe.state]),
    },
    {
      method: "GET",
      path: "/status",
      // Built once per background sample (body, Content-Length, ETag); If-None-Match gets a 304.
      handler: () => deps.sampler.reply,
    },
    metricsRoute(deps.metrics),
  ];
}
