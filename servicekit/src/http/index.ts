export { TokenVerifier, type AuthResult } from "./auth";
export { HttpError, type ErrorBody } from "./errors";
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
