// Writing answers: a Reply on a response (304 for a matching ETag), a refused upgrade on a raw
// socket, and the Reply for whatever a handler threw.
import http from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { HttpError } from "./errors";
import type { Reply } from "./router";

const JSON_TYPE = "application/json; charset=utf-8";

/** Answers a refused upgrade on the raw socket (nothing else was written to it) and closes it. */
export function refuseUpgrade(socket: Duplex, reply: Reply): void {
  if (socket.destroyed) return;
  const payload = JSON.stringify(reply.body ?? {});
  let extra = "";
  for (const [k, v] of Object.entries(reply.extraHeaders ?? {}))
    if (k !== "connection") extra += `${k}: ${v}\r\n`;
  socket.end(
    `HTTP/1.1 ${reply.status} ${http.STATUS_CODES[reply.status] ?? "Error"}\r\n` +
      `content-type: ${JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n` +
      `cache-control: no-store\r\n${extra}connection: close\r\n\r\n${payload}`,
  );
}

export function errorReply(log: Logger, err: unknown, method: string, route: string): Reply {
  if (err instanceof HttpError) {
    return {
      status: err.status,
      body: err.toJSON(),
      ...(err.headers ? { extraHeaders: err.headers } : {}),
    };
  }
  log.error({ err, method, route }, "request failed");
  return { status: 500, body: { error: "internal", message: "internal error (logged)" } };
}

/** Writes the reply; returns the status sent (304 when the client already has the body). */
export function send(req: http.IncomingMessage, res: http.ServerResponse, reply: Reply): number {
  if (res.headersSent || res.destroyed) return reply.status;
  if (reply.headers) {
    const ifNoneMatch = req.headers["if-none-match"];
    if (reply.etag && ifNoneMatch && matchesEtag(ifNoneMatch, reply.etag)) {
      res.writeHead(304, { etag: reply.etag, "cache-control": "no-store" }).end();
      return 304;
    }
    res.writeHead(reply.status, reply.headers);
    res.end(reply.body as string);
    return reply.status;
  }
  if (reply.body === undefined) {
    res.writeHead(reply.status, reply.extraHeaders).end();
    return reply.status;
  }
  const raw = Buffer.isBuffer(reply.body) || typeof reply.body === "string";
  const payload = raw ? (reply.body as Buffer | string) : JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    ...reply.extraHeaders,
    "content-type": reply.contentType ?? JSON_TYPE,
    "content-length": Buffer.byteLength(payload),
    "cache-control": "no-store",
  });
  res.end(payload);
  return reply.status;
}

/** If-None-Match: `*` or a list of entity tags; weak ones compare by their opaque part. */
function matchesEtag(header: string, etag: string): boolean {
  return header.split(",").some((t) => {
    const tag = t.trim();
    return tag === "*" || tag === etag || tag === `W/${etag}`;
  });
}
