/**
 * The health proof of an upgraded toolbox: a heartbeat since its step started that reports the
 * expected DTMA image, and the backend's own `GET /status` (with the toolbox's backend API
 * token) answering `status: ok` with the expected image when it reports one.
 */
import http from "node:http";
import https from "node:https";

export interface BackendStatus {
  ok: boolean;
  /** Why not, in words that name no secret. */
  problem?: string;
  version?: string;
  image?: string;
}

export interface BackendProbe {
  (url: string, token: string, ca?: string): Promise<BackendStatus>;
}

const MAX_BODY = 256 * 1024;

/**
 * `GET <backendUrl>/status` with the toolbox's backend API token, within `timeoutMs`, over
 * node:http(s) (a toolbox's own CA can be given for https). Never throws; the answer says what
 * was wrong.
 */
export function probeBackend(timeoutMs = 5000): BackendProbe {
  return (url, token, ca) =>
    new Promise<BackendStatus>((resolve) => {
      let target: URL;
      try {
        target = new URL(`${url.replace(/\/+$/, "")}/status`);
      } catch {
        resolve({ ok: false, problem: "the stored backend URL is not a URL" });
        return;
      }
      const client = target.protocol === "https:" ? https : http;
      const req = client.request(
        target,
        {
          method: "GET",
          headers: { authorization: `Bearer ${token}`, accept: "application/json" },
          timeout: timeoutMs,
          ...(ca && target.protocol === "https:" ? { ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY) req.destroy(new Error("the answer is too large"));
            else chunks.push(c);
          });
          res.on("end", () => {
            if (res.statusCode !== 200) {
              resolve({ ok: false, problem: `backend /status answered ${res.statusCode}` });
              return;
            }
            resolve(readStatus(Buffer.concat(chunks).toString("utf8")));
          });
          res.on("error", (err) =>
            resolve({ ok: false, problem: `backend /status: ${err.message}` }),
          );
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", (err) =>
        resolve({ ok: false, problem: `backend /status unreachable: ${err.message}` }),
      );
      req.end();
    });
}

function readStatus(text: string): BackendStatus {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { ok: false, problem: "backend /status is not JSON" };
  }
  const b = (body ?? {}) as { status?: unknown; version?: unknown; image?: unknown };
  const version = typeof b.version === "string" ? b.version.slice(0, 100) : undefined;
  const image = typeof b.image === "string" ? b.image.slice(0, 300) : undefined;
  if (b.status !== "ok") {
    return {
      ok: false,
      problem: `backend /status says ${typeof b.status === "string" ? b.status.slice(0, 40) : "nothing"}`,
      version,
      image,
    };
  }
  return { ok: true, version, image };
}

export interface HeartbeatSeen {
  last_heartbeat_at: Date | null;
  /** `dtma_image` of the last heartbeat (absent when the DTMA does not report one). */
  reported_image: string | null;
  has_image_field: boolean;
}

/**
 * Whether the heartbeats prove the step: one since it started that reports the expected image.
 * A DTMA that reports no image at all (one older than the field) is taken at its word only when
 * going back to it (a rollback), never as proof of an upgrade. Returns the problem, or undefined.
 */
export function heartbeatProblem(
  seen: HeartbeatSeen,
  expectedImage: string | null,
  since: Date,
  rollback: boolean,
): string | undefined {
  if (seen.last_heartbeat_at === null || seen.last_heartbeat_at < since) {
    return `no heartbeat since the step started (${since.toISOString()})`;
  }
  if (expectedImage === null) return undefined;
  if (!seen.has_image_field) {
    return rollback ? undefined : "the DTMA's heartbeat reports no image (dtma_image)";
  }
  if (seen.reported_image !== expectedImage) {
    return `the DTMA reports ${seen.reported_image ?? "no image"}, not ${expectedImage}`;
  }
  return undefined;
}

/** Whether the backend's answer proves the step; returns the problem, or undefined. */
export function backendProblem(
  status: BackendStatus,
  expectedImage: string | null,
): string | undefined {
  if (!status.ok) return status.problem ?? "backend unhealthy";
  if (expectedImage !== null && status.image !== undefined && status.image !== expectedImage) {
    return `the backend reports ${status.image}, not ${expectedImage}`;
  }
  return undefined;
}
