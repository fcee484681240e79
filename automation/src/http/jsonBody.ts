import type { FastifyInstance } from "fastify";
import { HttpError } from "../auth/auth";

// Request bodies: JSON only, and only JSON that Postgres's jsonb can hold (issue 13, item 5). A
// heartbeat body is stored as the toolbox's health details, so a string jsonb refuses
// (\u0000, a lone surrogate) or a nesting it overflows its stack on used to reach the database
// and come back as a 500. Both are refused here, with the field, before any handler runs.

/** Deeper than any body this API takes (the DTMA's heartbeat nests 3 levels). */
const MAX_JSON_DEPTH = 32;

/**
 * How deeply the JSON text nests, counted without parsing it (so 20,000 levels cost one pass,
 * not a parser's or a validator's stack): brackets outside strings. Stops at `limit + 1`.
 */
function jsonDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** \u0000 or a UTF-16 surrogate without its pair: what Postgres's json and jsonb refuse. */
const LONE_SURROGATE = /\p{Cs}/u;
const unstorable = (s: string) => s.includes("\0") || LONE_SURROGATE.test(s);

/**
 * The path (`a.0.b`, "" for the top) of the first string or key jsonb cannot hold, or undefined.
 * The value's depth is bounded by `jsonDepth` first, so this recursion is too.
 */
function unstorablePath(value: unknown, path: string[] = []): string | undefined {
  if (typeof value === "string") return unstorable(value) ? path.join(".") : undefined;
  if (value === null || typeof value !== "object") return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = unstorablePath(value[i], [...path, String(i)]);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [k, v] of Object.entries(value)) {
    if (unstorable(k)) return path.join(".");
    const found = unstorablePath(v, [...path, k]);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The path of the first key fastify's parser refuses as prototype poisoning (`__proto__`, or
 * `constructor` holding `prototype`), in a value JSON.parse built (where such keys are plain
 * own properties), so the answer can name the field; undefined when there is none.
 */
function poisonedPath(value: unknown, path: string[] = []): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const here = [...path, k];
    if (k === "__proto__") return here.join(".");
    if (k === "constructor" && v !== null && typeof v === "object" && Object.hasOwn(v, "prototype"))
      return here.join(".");
    const found = poisonedPath(v, here);
    if (found !== undefined) return found;
  }
  return undefined;
}

function refusedField(text: string): string | undefined {
  try {
    return poisonedPath(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/**
 * Installs the body parsers: an empty body is no body whatever its content type (clients send
 * `content-type: application/json` on a DELETE by habit); a non-empty body is JSON, nested at
 * most MAX_JSON_DEPTH levels, parsed by fastify's own parser (prototype poisoning refused) and
 * holding nothing jsonb refuses, or a 4xx naming the field: 400 invalid_json (body), 400
 * invalid_request (the field), 415 unsupported_media_type (content-type).
 */
export function jsonBodies(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser("error", "error");
  // fastify's own text/plain parser would hand a string to the handler: everything but JSON is 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, raw, done) => {
    const text = String(raw);
    if (text === "") return done(null, undefined);
    if (jsonDepth(text) > MAX_JSON_DEPTH) {
      return done(
        new HttpError(
          400,
          "invalid_json",
          `body: nested deeper than ${MAX_JSON_DEPTH} levels`,
          "body",
        ),
        undefined,
      );
    }
    void json(req, text, (err: Error | null, value?: unknown) => {
      if (err) {
        // Valid JSON the parser still refuses: a prototype-poisoning key, named where it is.
        const poisoned = refusedField(text);
        if (poisoned !== undefined) {
          const field = poisoned.split(".").slice(0, -1).join(".") || "body";
          return done(
            new HttpError(400, "invalid_request", `${poisoned}: this key is refused`, field),
            undefined,
          );
        }
        return done(new HttpError(400, "invalid_json", "body: not valid JSON", "body"), undefined);
      }
      const bad = unstorablePath(value);
      if (bad !== undefined) {
        const field = bad || "body";
        return done(
          new HttpError(
            400,
            "invalid_request",
            `${field}: holds \\u0000 or an unpaired surrogate, which cannot be stored`,
            field,
          ),
          undefined,
        );
      }
      done(null, value);
    });
  });
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, raw, done) => {
    if (String(raw) === "") done(null, undefined);
    else
      done(
        new HttpError(
          415,
          "unsupported_media_type",
          "content-type: send application/json",
          "content-type",
        ),
        undefined,
      );
  });
}
