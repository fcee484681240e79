import { Client } from "pg";

/**
 * One connection that LISTENs on a channel for the whole process, reconnected a second after
 * it is lost. `onNotify` gets each payload; `onConnected` runs after every (re)connection, since
 * whatever was notified while away is lost and must be read again.
 */
export class Listener {
  private client?: Client;
  private reconnect?: NodeJS.Timeout;
  private stopping = false;

  constructor(
    private readonly opts: {
      connectionString: string;
      channel: string;
      log: { warn(obj: object, msg: string): void };
      onNotify(payload: string): void;
      onConnected(): void;
    },
  ) {}

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Connects once; a failure is retried in the background (callers poll meanwhile). */
  async start(): Promise<void> {
    await this.connect().catch((err: Error) => this.lost(err));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconnect);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new Client({ connectionString: this.opts.connectionString });
    client.on("notification", (n) => this.opts.onNotify(n.payload ?? ""));
    client.on("error", (err) => this.lost(err));
    client.on("end", () => {
      if (this.client === client) this.lost(new Error("connection ended"));
    });
    try {
      await client.connect();
      await client.query(`listen "${this.opts.channel.replace(/"/g, '""')}"`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.stopping) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.opts.onConnected();
  }

  private lost(err: Error): void {
    const client = this.client;
    this.client = undefined;
    void client?.end().catch(() => undefined);
    if (this.stopping || this.reconnect) return;
    this.opts.log.warn(
      { channel: this.opts.channel, err: err.message },
      "LISTEN lost; reconnecting",
    );
    this.reconnect = setTimeout(() => {
      this.reconnect = undefined;
      if (!this.stopping) void this.connect().catch((e: Error) => this.lost(e));
    }, 1000);
    this.reconnect.unref();
  }
}
