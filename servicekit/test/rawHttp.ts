import net from "node:net";

// Raw HTTP/1.1 for tests: the request target (and everything else) reaches the server exactly
// as written, which fetch and node:http clients would normalise or refuse. Also used by the
// DTMA's security suite.

export interface RawAnswer {
  status: number;
  /** Lowercased names. */
  headers: Record<string, string>;
  body: string;
}

/** A request head: `Host` and `Connection: close` added, then `extra` header lines. */
export function rawRequest(method: string, target: string, extra: string[] = []): string {
  return [
    `${method} ${target} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Connection: close",
    ...extra,
    "",
    "",
  ].join("\r\n");
}

/** Sends `head` as bytes and reads the answer until the server closes (status 0: none). */
export function rawHttp(port: number, head: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      const top = split < 0 ? text : text.slice(0, split);
      const [statusLine = "", ...lines] = top.split("\r\n");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(":");
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({
        status: Number(statusLine.split(" ")[1] ?? 0) || 0,
        headers,
        body: split < 0 ? "" : text.slice(split + 4),
      });
    });
    socket.end(head);
  });
}
