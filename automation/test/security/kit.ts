/* eslint-disable @typescript-eslint/no-unsafe-member-access -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import pino from "pino";
import { TestEngine } from "../../src/engine/testEngine";
import {
  auth,
  newAccount,
  requestToolbox,
  startTestService,
  waitFor,
  type TestServiceOptions,
} from "../helpers";

// What the security suite shares: the real service on loopback (raw HTTP reaches it as an
// attacker would send it), with every log line kept so a test can say what was logged.

export interface LogLine {
  level: number;
  msg?: string;
  err?: { stack?: string; message?: string };
  [key: string]: unknown;
}

export type LoggedService = Awaited<ReturnType<typeof startTestService>> & {
  port: number;
  base: string;
  lines: LogLine[];
};

/** The service with its HTTP logs on, listening on 127.0.0.1, its log lines collected. */
export async function loggedService(
  opts: Partial<TestServiceOptions> = {},
): Promise<LoggedService> {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString("utf8").split("\n"))
        if (l) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  const svc = await startTestService({
    engine: new TestEngine(),
    ...opts,
    log: pino({ level: "info" }, destination),
    httpLogs: true,
  });
  await svc.app.listen({ port: 0, host: "127.0.0.1" });
  const port = (svc.app.server.address() as AddressInfo).port;
  return Object.assign(svc, { port, base: `http://127.0.0.1:${port}`, lines });
}

/** Log lines that carry a stack trace or are errors: none may come from an anonymous caller. */
export function troubling(lines: LogLine[]): LogLine[] {
  return lines.filter((l) => l.level >= 50 || JSON.stringify(l).includes("\\n    at "));
}

/** A toolbox provisioned through the API (test engine), with its DTMA token. */
export async function provisioned(
  svc: LoggedService,
  account = newAccount(),
): Promise<{ account: string; dtmaToken: string }> {
  await requestToolbox(svc, account);
  await waitFor("the toolbox to be provisioned", async () => {
    const { rows } = await svc.pool.query<{ status: string }>(
      "select status::text from account_tool_environments where account_id = $1",
      [account],
    );
    return rows[0]?.status === "awaiting_heartbeat" ? true : undefined;
  });
  const tokens = await svc.app.inject({ url: `/v1/toolboxes/${account}/tokens`, headers: auth });
  assert.equal(tokens.statusCode, 200, tokens.body);
  return { account, dtmaToken: tokens.json().dtma_token as string };
}
