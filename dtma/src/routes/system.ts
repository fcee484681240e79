import type { Metrics } from "../metrics";
import type { Route } from "../http/router";
import type { StatusSampler } from "../status/sampler";

const HEALTH = Buffer.from(JSON.stringify({ status: "ok" }));
const JSON_TYPE = "application/json; charset=utf-8";

export function systemRoutes(deps: { sampler: StatusSampler; metrics: Metrics }): Route[] {
  return [
    // No token and no version: the container health check and the component call it.
    {
      method: "GET",
      path: "/health",
      public: true,
      handler: () => ({ status: 200, body: HEALTH, contentType: JSON_TYPE }),
    },
    {
      method: "GET",
      path: "/status",
      handler: () => ({ status: 200, body: deps.sampler.json, contentType: JSON_TYPE }),
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
