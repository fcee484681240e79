export { TokenVerifier, type AuthResult } from "./auth";
export { HttpError, MethodNotAllowed, type ErrorBody } from "./errors";
export { metricsRoute } from "./metricsRoute";
export { parseTarget, type Target } from "./target";
export {
  preparedReply,
  Router,
  type Reply,
  type RequestContext,
  type Route,
  type RouteAuth,
  type UpgradeContext,
} from "./router";
export { BODY_LIMIT_BYTES, readJson } from "./body";
export { errorReply, refuseUpgrade, send } from "./reply";
export { createHttpServer, refused, type RequestMetrics, type ServerDeps } from "./server";
export type { TlsMaterial } from "./tls";
