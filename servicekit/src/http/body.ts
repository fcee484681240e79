import type http from "node:http";
import { HttpError } from "./errors";

export const BODY_LIMIT_BYTES = 128 * 1024;

/** Reads a JSON body of at most `limit` bytes (413 above it, 415 when not JSON, 400 when malformed). */
export function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) {
    req.resume();
    return Promise.reject(tooLarge(limit));
  }
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    req.resume();
    return Promise.reject(
      new HttpError(415, "unsupported_media_type", "the body must be application/json", "body"),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        reject(new HttpError(400, "invalid_json", "the body is not valid JSON", "body"));
      }
    });
    req.on("error", reject);
  });
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, "body_too_large", `the body exceeds ${limit} bytes`, "body");
}
