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
export {
  BODY_LIMIT_BYTES,
  createHttpServer,
  errorReply,
  readJson,
  refused,
  refuseUpgrade,
  send,
  type RequestMetrics,
  type ServerDeps,
  type TlsMaterial,
} from "./server";
