/**
 * The backend image serving HTTPS, started from its container spec on the real Docker daemon with
 * a certificate signed by a CA generated here (as the platform CA signs each toolbox's): the
 * control-plane API and the official MCP client work with the CA pinned; a client that does not
 * trust it is refused; plain HTTP and TLS 1.1 get nothing that carries data.
 */
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Agent, fetch as undiciFetch } from "undici";
import { certificates } from "../plan/certificates";
import { DTMA_TEST_IMAGE } from "./harness/dockerCli";
import { BACKEND_TEST_IMAGE, imagePresent, startToolbox, type Toolbox } from "./harness/toolbox";

const MCP_TOOLS = "agentopia-test/mcp-tools:latest";

describe("the backend over HTTPS with a CA-signed certificate (real Docker daemon)", function () {
  this.timeout(300_000);
  let box: Toolbox;
  let pinned: Agent;
  let mcp: Client | undefined;
  const material = certificates();
  const b64 = (s: string) => Buffer.from(s).toString("base64");

  const api = async (method: string, p: string, body?: unknown) => {
    const res = await undiciFetch(box.backendUrl + p, {
      method,
      dispatcher: pinned,
      headers: {
        authorization: `Bearer ${box.tokens.backendApi}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  before(async function () {
    for (const image of [DTMA_TEST_IMAGE, BACKEND_TEST_IMAGE, MCP_TOOLS]) {
      assert.ok(imagePresent(image), `${image} is missing: run bash scripts/build-test-images.sh`);
    }
    pinned = new Agent({ connect: { ca: material.ca } });
    box = await startToolbox({
      backendSecretEnv: { TLS_CERT: b64(material.cert), TLS_KEY: b64(material.key) },
    });
    assert.match(box.backendUrl, /^https:\/\//);
  });

  after(async () => {
    await mcp?.close().catch(() => undefined);
    await pinned?.close();
    box?.remove();
  });

  it("passes its own health check over TLS and answers the control plane with the CA pinned", async () => {
    const status = await api("GET", "/status");
    assert.equal(status.status, 200);
    assert.equal(status.body.service, "backend");
    const deployed = await api("PUT", "/v1/servers/tools", {
      image: MCP_TOOLS,
      transport: { type: "stdio" },
    });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
  });

  it("serves the MCP gateway to the official client over HTTPS", async () => {
    mcp = new Client({ name: "tls-test", version: "1.0.0" });
    await mcp.connect(
      new StreamableHTTPClientTransport(new URL(`${box.backendUrl}/mcp/tools`), {
        requestInit: { headers: { authorization: `Bearer ${box.tokens.agentGateway}` } },
        fetch: (url, init) =>
          undiciFetch(url, {
            ...(init as object),
            dispatcher: pinned,
          }) as unknown as Promise<Response>,
      }),
    );
    const result = await mcp.callTool({ name: "echo", arguments: { text: "over tls" } });
    assert.equal((result.content as { text: string }[])[0].text, "over tls");
  });

  it("refuses a client that does not trust the CA", async () => {
    await assert.rejects(() => fetch(`${box.backendUrl}/health`), /fetch failed/);
    const error = await new Promise<Error>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: Number(new URL(box.backendUrl).port) });
      s.once("error", resolve);
      s.once("secureConnect", () => resolve(new Error("connected")));
    });
    assert.match(error.message, /self.signed|unable to (verify|get local issuer)/i);
  });

  it("answers plain HTTP with nothing that carries data, and refuses TLS 1.1", async () => {
    const port = Number(new URL(box.backendUrl).port);
    const answer = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const s = net.connect(port, "127.0.0.1", () =>
        s.write(
          `GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${box.tokens.backendApi}\r\n\r\n`,
        ),
      );
      s.on("data", (c: Buffer) => chunks.push(c));
      s.on("close", () => resolve(Buffer.concat(chunks)));
      s.on("error", () => undefined);
      s.setTimeout(5000, () => s.destroy());
    });
    const text = answer.toString("latin1");
    assert.ok(
      !text.includes("HTTP/") && !text.includes("{"),
      `plain HTTP got: ${JSON.stringify(text)}`,
    );
    const old = await new Promise<string>((resolve) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port,
        ca: material.ca,
        maxVersion: "TLSv1.1",
        minVersion: "TLSv1",
      });
      s.once("error", (e: Error) => resolve(e.message));
      s.once("secureConnect", () => resolve(`connected with ${s.getProtocol()}`));
    });
    assert.doesNotMatch(old, /^connected/);
  });
});
