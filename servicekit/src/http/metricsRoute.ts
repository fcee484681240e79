import type { Route } from "./router";

/** `GET /metrics`: the Prometheus text format, behind the service's token. */
export function metricsRoute(metrics: { render(): string }): Route {
  return {
    method: "GET",
    path: "/metrics",
    handler: () => ({
      status: 200,
      body: metrics.render(),
      contentType: "text/plain; version=0.0.4; charset=utf-8",
    }),
  };
}
