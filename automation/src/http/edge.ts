import http from "node:http";
import type { Socket } from "node:net";
import { parseTarget } from "@agentopia-toolboxes/servicekit/http";
import type { FastifyError, FastifyReply, FastifyRequest, FastifyServerOptions } from "fastify";
import { z } from "zod";
import { HttpError } from "../auth/auth";

// What the service answers before a route runs, and for whatever a route or fastify throws:
// always {error, message, field?} (issue 13, item 12), never a 5xx for a bad request, and never
// a stack trace logged for a caller who did not authenticate (item 5).

/** Every refusal's body; a 409 adds the record it is about (the OpenAPI document's Error). */
export const errorBody = z.object({
  error: z.string().describe("what went wrong, as a code"),
  message: z.string(),
  field: z.string().optional().describe("the request field at fault, where there is one"),
});
type ErrorBody = z.infer<typeof errorBody>;

const body = (error: string, message: string, field?: string): ErrorBody =>
  field ? { error, message, field } : { error, message };

/**
 * The request target as RFC 9112 §3.2 allows it (servicekit's rule, shared with the DTMA): an
 * origin-form path or an absolute URL, routed by its path; anything else is 400 invalid_target.
 * Runs first, before the token is looked at.
 */
export function checkTarget(req: FastifyRequest): void {
  if (parseTarget(req.raw.url ?? "") === undefined) {
    throw new HttpError(400, "invalid_target", "target: not a path or an absolute URL", "target");
  }
}

/**
 * fastify's own refusals of a URL it cannot route: a percent-encoding that does not decode, or a
 * parameter longer than it matches. Answered before authentication: the answer is the same for
 * every such URL and reveals nothing.
 */
export const frameworkErrors: NonNullable<FastifyServerOptions["frameworkErrors"]> = (
  err: FastifyError,
  req: FastifyRequest,
  reply: FastifyReply,
) => {
  const refusal =
    parseTarget(req.raw.url ?? "") === undefined
      ? body("invalid_target", "target: not a path or an absolute URL", "target")
      : err.code === "FST_ERR_MAX_PARAM_LENGTH"
        ? body("invalid_path", "path: a segment of the path is too long", "path")
        : body("invalid_path", "path: not a valid percent-encoded path", "path");
  req.log.info({ code: refusal.error }, "request refused");
  void reply.code(400).send(refusal);
};

/** Writes a whole answer on a socket node:http could not parse a request from, then closes it. */
function answerOnSocket(socket: Socket, status: number, refusal: ErrorBody): void {
  const text = JSON.stringify(refusal);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
      "Content-Type: application/json\r\n" +
      `Content-Length: ${Buffer.byteLength(text)}\r\n` +
      "Connection: close\r\n\r\n" +
      text,
  );
}

/** Requests node:http refuses before fastify sees them: oversized headers, a malformed head. */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  if (err.code === "HPE_HEADER_OVERFLOW") {
    answerOnSocket(
      socket,
      431,
      body(
        "headers_too_large",
        `headers: larger than ${http.maxHeaderSize} bytes in all`,
        "headers",
      ),
    );
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    answerOnSocket(socket, 408, body("request_timeout", "the request took too long to arrive"));
  } else if (err.code === "HPE_INVALID_URL") {
    answerOnSocket(
      socket,
      400,
      body("invalid_target", "target: not a path or an absolute URL", "target"),
    );
  } else {
    answerOnSocket(socket, 400, body("bad_request", "not a valid HTTP/1.1 request"));
  }
}

/** fastify's codes for body problems, named as this API names them. */
const FASTIFY_REFUSALS: Record<string, [string, string | undefined]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ["body_too_large", "body"],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ["invalid_request", "content-length"],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ["unsupported_media_type", "content-type"],
  FST_ERR_CTP_INVALID_TYPE: ["unsupported_media_type", "content-type"],
  FST_ERR_CTP_EMPTY_TYPE: ["unsupported_media_type", "content-type"],
};

/**
 * Every error a route, a hook or a parser throws. HttpErrors and fastify's 4xx are answered as
 * they are; anything else is a 500 `internal` whose details stay in the log — with a stack only
 * when the caller was authenticated, so no anonymous request can fill the log with traces.
 */
export function errorHandler(
  err: Error & { statusCode?: number; code?: string },
  req: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  if (err instanceof HttpError) {
    req.log.info({ code: err.code, reason: err.message }, "request refused");
    for (const [name, value] of Object.entries(err.headers ?? {})) void reply.header(name, value);
    return reply.code(err.statusCode).send(body(err.code, err.message, err.field));
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const [code, field] = FASTIFY_REFUSALS[err.code ?? ""] ?? ["invalid_request", undefined];
    req.log.info({ code: err.code, reason: err.message }, "request refused");
    const message = field ? `${field}: ${err.message}` : err.message;
    return reply.code(status).send(body(code, message, field));
  }
  if (req.authenticated) req.log.error({ err }, "request failed");
  else req.log.warn({ reason: err.message, code: err.code }, "unauthenticated request failed");
  return reply.code(500).send(body("internal", "internal error"));
}
