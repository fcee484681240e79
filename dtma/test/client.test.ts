import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { DtmaClient, DtmaError, DtmaUnavailable } from "../src/client";
import { TOKEN } from "./helpers";

// The typed client against stand-ins on loopback that fail in each way a DTMA can: the backend
// must get a DtmaUnavailable (its 503 dtma_unavailable) in bounded time, never a hang, and never
// a token in the error.

/** A raw TCP server on loopback; `onRequest` sees each request head on a connection. */
async function standIn(
  onRequest: (socket: net.Socket, head: string, nth: number) => void,
): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffered = "";
    let nth = 0;
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("latin1");
      let end: number;
      while ((end = buffered.indexOf("\r\n\r\n")) >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        onRequest(socket, head, ++nth);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const ok = (body: string) =>
  `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n${body}`;

function unavailableWith(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof DtmaUnavailable, String(err));
    assert.equal(err.code, code, err.message);
    assert.ok(!err.message.includes(TOKEN) && !err.reason.includes(TOKEN));
    return true;
  };
}

describe("typed client: an unreachable DTMA is DtmaUnavailable, never a hang", function () {
  this.timeout(20_000);

  it("connection refused", async () => {
    const gone = await standIn(() => undefined);
    await gone.close(); // nothing listens on that port any more
    const client = new DtmaClient({ baseUrl: gone.url, token: TOKEN });
    await assert.rejects(client.listTools(), unavailableWith("ECONNREFUSED"));
    await assert.rejects(client.attach("x"), unavailableWith("ECONNREFUSED"));
    client.close();
  });

  it("no answer within the timeout: requests, long polls and upgrades", async () => {
    const silent = await standIn(() => undefined);
    const client = new DtmaClient({ baseUrl: silent.url, token: TOKEN, timeoutMs: 200 });
    try {
      await assert.rejects(client.status(), unavailableWith("ETIMEDOUT"));
      await assert.rejects(client.waitForTool("x", "running", 0), unavailableWith("ETIMEDOUT"));
      await assert.rejects(client.attach("x"), unavailableWith("ETIMEDOUT"));
      await assert.rejects(client.openLane("x"), unavailableWith("ETIMEDOUT"));
    } finally {
      client.close();
      await silent.close();
    }
  });

  it("a connection reset, an answer cut short, a body that is not JSON", async () => {
    const broken = await standIn((socket, head) => {
      if (head.includes("/reset")) socket.resetAndDestroy();
      else if (head.includes("/short"))
        socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"tools"');
      else socket.write(ok("<html>"));
    });
    const client = new DtmaClient({ baseUrl: `${broken.url}/`, token: TOKEN });
    try {
      await assert.rejects(client.getTool("reset"), unavailableWith("ECONNRESET"));
      await assert.rejects(client.getTool("short"), unavailableWith("ECONNRESET"));
      await assert.rejects(client.getTool("html"), unavailableWith("EPROTO"));
    } finally {
      client.close();
      await broken.close();
    }
  });

  it("a keep-alive socket closed by the server as it is reused: idempotent calls retry once, others fail", async () => {
    // Answers the first request of every connection and drops the connection at the second.
    const server = await standIn((socket, _head, nth) => {
      if (nth === 1) socket.write(ok(JSON.stringify({ tools: [] })));
      else socket.resetAndDestroy();
    });
    const client = new DtmaClient({ baseUrl: server.url, token: TOKEN });
    try {
      assert.deepEqual(await client.listTools(), []);
      assert.deepEqual(await client.listTools(), []); // on a new connection after the reset
      await assert.rejects(client.startTool("x"), unavailableWith("ECONNRESET"));
    } finally {
      client.close();
      await server.close();
    }
  });

  it("a refusal is a DtmaError with the answer's code; a 101 of another protocol is unavailable", async () => {
    const server = await standIn((socket, head) => {
      if (head.includes("/tools/other/attach"))
        socket.end(
          "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n",
        );
      else {
        const body = JSON.stringify({ error: "already_attached", message: "taken", field: "name" });
        socket.end(
          `HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      }
    });
    const client = new DtmaClient({ baseUrl: server.url, token: TOKEN });
    try {
      await assert.rejects(
        client.attach("busy"),
        (err: unknown) =>
          err instanceof DtmaError &&
          err.status === 409 &&
          err.body.error === "already_attached" &&
          err.body.field === "name",
      );
      await assert.rejects(client.attach("other"), unavailableWith("EPROTO"));
    } finally {
      client.close();
      await server.close();
    }
  });

  it("refuses a baseUrl that is not http://", () => {
    assert.throws(() => new DtmaClient({ baseUrl: "https://dtma:30000", token: TOKEN }), TypeError);
  });
});
