/**
 * The DigitalOcean API, read-only but for one call: the toolbox droplets (tag `agentopia-toolbox`)
 * for reconciliation, and deleting one untracked droplet when an operator asks for it. Through
 * DigitalOcean's official TypeScript client, `@digitalocean/dots` (Kiota-generated; its retry
 * handler waits out a 429 as `Retry-After` says). Loaded on first use: the service loads none
 * of it unless a reconciliation compares droplets.
 */
import { ACCOUNT_TAG_PATTERN, RESOURCE_PREFIX } from "@agentopia-toolboxes/contract";
import type { AuthenticationProvider, RequestAdapter } from "@microsoft/kiota-abstractions";

export interface ToolboxDroplet {
  id: string;
  name: string;
  tags: string[];
  status?: string;
  createdAt?: string;
  /** From its `account-<id>` tag, else its `tbx-<id>` name; undefined when it names none. */
  accountId?: string;
}

export interface DropletApi {
  /** Every droplet carrying `tag`, all pages. */
  listDroplets(tag: string): Promise<ToolboxDroplet[]>;
  deleteDroplet(id: string): Promise<void>;
}

export interface DigitalOceanOptions {
  token: string;
  /** https://api.digitalocean.com; tests serve recorded answers on loopback. */
  apiUrl: string;
  /** Page size (the API's maximum is 200). */
  perPage?: number;
}

/** The account a toolbox droplet belongs to, by its tags first, then by its name. */
export function accountOfDroplet(name: string, tags: readonly string[]): string | undefined {
  for (const tag of tags) {
    const m = ACCOUNT_TAG_PATTERN.exec(tag);
    if (m) return m[1];
  }
  return name.startsWith(RESOURCE_PREFIX) ? name.slice(RESOURCE_PREFIX.length) : undefined;
}

/** The part of dots this module uses (the package ships TypeScript sources, no declarations). */
interface DotsDroplet {
  id?: number | null;
  name?: string | null;
  tags?: (string | null)[] | null;
  status?: string | null;
  createdAt?: Date | null;
}
interface Dots {
  DigitalOceanApiKeyAuthenticationProvider: new (token: string) => AuthenticationProvider;
  createDigitalOceanClient(adapter: RequestAdapter): {
    v2: {
      droplets: {
        get(config: {
          queryParameters: { tagName: string; perPage: number; page: number };
        }): Promise<
          { droplets?: DotsDroplet[] | null; meta?: { total?: number | null } | null } | undefined
        >;
        byDroplet_id(id: number): { delete(): Promise<void> };
      };
    };
  };
}

/**
 * dots is imported by a name TypeScript does not resolve: resolved, its sources (it ships no
 * declarations) would be compiled with this project's settings, which they do not meet.
 */
const DOTS: string = "@digitalocean/dots";

/** The DigitalOcean client (dots over Kiota's fetch adapter) for this token and API URL. */
export async function digitalOceanApi(opts: DigitalOceanOptions): Promise<DropletApi> {
  const dots = (await import(DOTS)) as Dots;
  const { FetchRequestAdapter } = await import("@microsoft/kiota-http-fetchlibrary");
  const adapter = new FetchRequestAdapter(
    new dots.DigitalOceanApiKeyAuthenticationProvider(opts.token),
  );
  adapter.baseUrl = opts.apiUrl;
  const client = dots.createDigitalOceanClient(adapter);
  const perPage = opts.perPage ?? 200;
  return {
    async listDroplets(tag) {
      const all: ToolboxDroplet[] = [];
      for (let page = 1; ; page++) {
        const res = await client.v2.droplets.get({
          queryParameters: { tagName: tag, perPage, page },
        });
        const droplets = res?.droplets ?? [];
        for (const d of droplets) {
          if (d.id === undefined || d.id === null) continue;
          const name = d.name ?? "";
          const tags = (d.tags ?? []).filter((t): t is string => typeof t === "string");
          all.push({
            id: String(d.id),
            name,
            tags,
            ...(d.status ? { status: String(d.status) } : {}),
            ...(d.createdAt ? { createdAt: d.createdAt.toISOString() } : {}),
            accountId: accountOfDroplet(name, tags),
          });
        }
        const total = res?.meta?.total ?? undefined;
        // The last page: fewer than a page, or everything the API says there is.
        if (droplets.length < perPage || (total !== undefined && all.length >= total)) break;
      }
      return all;
    },
    async deleteDroplet(id) {
      if (!/^\d{1,18}$/.test(id)) throw new Error(`not a droplet id: ${id}`);
      await client.v2.droplets.byDroplet_id(Number(id)).delete();
    },
  };
}
