import assert from "node:assert/strict";
import fc from "fast-check";
import { parse } from "yaml";
import { CloudInitError, renderCloudConfig, type CloudInitOptions } from "../cloud-init";
import { cloudConfigTopLevelKeys, cloudInitSchema, requireCommand } from "./helpers/shell";

/* OpenSSH encodings built from random bytes: format-valid keys, as many as fast-check wants. */

function wireString(data: Buffer | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function ed25519Blob(publicKey: Uint8Array): Buffer {
  return Buffer.concat([wireString("ssh-ed25519"), wireString(Buffer.from(publicKey))]);
}

function publicLine(publicKey: Uint8Array, comment: string): string {
  const line = `ssh-ed25519 ${ed25519Blob(publicKey).toString("base64")}`;
  return comment ? `${line} ${comment}` : line;
}

/** The unencrypted "openssh-key-v1" container as ssh-keygen writes it. */
function privateBlock(publicKey: Uint8Array, seed: Uint8Array): string {
  const check = Buffer.from([1, 2, 3, 4]);
  let section = Buffer.concat([
    check,
    check,
    wireString("ssh-ed25519"),
    wireString(Buffer.from(publicKey)),
    wireString(Buffer.concat([seed, publicKey])),
    wireString(""),
  ]);
  const padding = Buffer.from([1, 2, 3, 4, 5, 6, 7].slice(0, (8 - (section.length % 8)) % 8));
  section = Buffer.concat([section, padding]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    wireString("none"),
    wireString("none"),
    wireString(""),
    Buffer.from([0, 0, 0, 1]),
    wireString(ed25519Blob(publicKey)),
    wireString(section),
  ]).toString("base64");
  const label = ["OPENSSH", "PRIVATE", "KEY"].join(" ");
  return [
    `-----BEGIN ${label}-----`,
    ...body.match(/.{1,70}/g)!,
    `-----END ${label}-----`,
    "",
  ].join("\n");
}

/* Arbitraries. */

/** Records with Object.prototype, as callers pass them (fast-check may make null-prototype ones). */
const PLAIN = { noNullPrototype: true } as const;

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
/** Comment characters, YAML's special ones and non-ASCII included; no control characters. */
const commentChar = fc.constantFrom(..."abcXYZ019 @.-_+=:#'\"&*!|>%`{}[],?\\/é日😀".split(/(?:)/u));
const comment = fc.string({ unit: commentChar, maxLength: 40 });

const hostKeyArb = fc.tuple(bytes32, bytes32).map(([pub, seed]) => ({
  privateKeyOpenssh: privateBlock(pub, seed),
  publicKeyOpenssh: `${publicLine(pub, "")}\n`,
}));

const authorizedKeysArb = fc
  .uniqueArray(bytes32, {
    minLength: 1,
    maxLength: 5,
    selector: (b) => Buffer.from(b).toString("hex"),
  })
  .chain((pubs) => fc.tuple(...pubs.map((pub) => comment.map((c) => publicLine(pub, c)))));

interface Net {
  network: number;
  prefix: number;
  text: string;
}

function net(base: number, prefix: number, offset: number): Net {
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  const network = ((base + offset) & mask) >>> 0;
  const text = `${[24, 16, 8, 0].map((s) => (network >>> s) & 0xff).join(".")}/${prefix}`;
  return { network, prefix, text };
}

function within(outer: Net, inner: Net): boolean {
  const mask = (0xffffffff << (32 - outer.prefix)) >>> 0;
  return inner.prefix >= outer.prefix && (inner.network & mask) >>> 0 === outer.network;
}

const DOCKER0 = net(0xac110000, 16, 0);
/** A network inside one of the RFC 1918 ranges, never overlapping docker0. */
const subnetArb = fc
  .constantFrom(
    { base: 0x0a000000, size: 2 ** 24, minPrefix: 8 },
    { base: 0xac100000, size: 2 ** 20, minPrefix: 12 },
    { base: 0xc0a80000, size: 2 ** 16, minPrefix: 16 },
  )
  .chain(({ base, size, minPrefix }) =>
    fc
      .tuple(fc.integer({ min: minPrefix, max: 28 }), fc.integer({ min: 0, max: size - 1 }))
      .map(([prefix, offset]) => net(base, prefix, offset)),
  )
  .filter((n) => !within(n, DOCKER0) && !within(DOCKER0, n));

const subnetsArb = fc
  .tuple(subnetArb, subnetArb)
  .filter(([a, b]) => !within(a, b) && !within(b, a));

const portsArb = fc
  .tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }))
  .filter(([dtma, backend]) => dtma !== backend && backend !== 22);

const validOptionsArb: fc.Arbitrary<CloudInitOptions> = fc
  .record({
    hostKey: hostKeyArb,
    authorizedKeys: authorizedKeysArb,
    ports: portsArb,
    subnets: subnetsArb,
    swapMb: fc.integer({ min: 0, max: 8192 }),
    logRotation: fc.record(
      {
        maxSize: fc
          .tuple(fc.integer({ min: 1, max: 999_999 }), fc.constantFrom("k", "m", "g"))
          .map(([n, unit]) => `${n}${unit}`),
        maxFile: fc.integer({ min: 1, max: 100 }),
      },
      PLAIN,
    ),
    timezone: fc.constantFrom(
      "UTC",
      "Europe/Paris",
      "America/New_York",
      "Etc/GMT+5",
      "Asia/Kolkata",
    ),
  })
  .map(({ ports, subnets, ...rest }) => ({
    ...rest,
    dtmaPort: ports[0],
    backendPort: ports[1],
    controlSubnet: subnets[0].text,
    toolsSubnet: subnets[1].text,
  }));

/** The form the renderer writes a key in: trimmed, single spaces. */
function normalised(key: string): string {
  return key
    .trim()
    .split(/[ \t]+/)
    .join(" ");
}

interface Rendered {
  users: { name: string; ssh_authorized_keys: string[] }[];
  ssh_keys: Record<string, string>;
  swap?: { size: string };
  write_files: { path: string; content: string }[];
}

describe("cloud-init renderer properties", function () {
  it("renders a structurally valid config for any valid options", function () {
    let firstKeys: string[] | undefined;
    fc.assert(
      fc.property(validOptionsArb, (opts) => {
        const text = renderCloudConfig(opts);
        assert.ok(text.startsWith("#cloud-config\n"));
        assert.ok(Buffer.byteLength(text) < 16 * 1024);

        const config = parse(text) as Rendered;
        // The same keys whatever the options, but swap, which swapMb 0 leaves out.
        const keys = Object.keys(config);
        assert.equal(keys.includes("swap"), opts.swapMb !== 0);
        const others = keys.filter((k) => k !== "swap").sort();
        firstKeys ??= others;
        assert.deepEqual(others, firstKeys);

        assert.deepEqual(config.users, [
          {
            name: "root",
            lock_passwd: true,
            ssh_authorized_keys: opts.authorizedKeys.map(normalised),
          },
        ]);
        assert.deepEqual(config.ssh_keys, {
          ed25519_private: opts.hostKey.privateKeyOpenssh,
          ed25519_public: opts.hostKey.publicKeyOpenssh.trim(),
        });
        assert.equal(config.swap?.size, opts.swapMb ? `${opts.swapMb}M` : undefined);

        const fw = config.write_files.find((f) => f.path === "/usr/local/sbin/toolbox-firewall");
        assert.ok(fw);
        assert.ok(
          fw.content.includes(`-s ${opts.toolsSubnet} -p tcp --dport ${opts.dtmaPort} -j REJECT`),
        );
        assert.ok(
          fw.content.includes(`! -s ${opts.controlSubnet} -d ${opts.controlSubnet} -p tcp`),
        );
        const daemon = config.write_files.find((f) => f.path === "/etc/docker/daemon.json");
        assert.deepEqual((JSON.parse(daemon!.content) as { "log-opts": unknown })["log-opts"], {
          "max-size": opts.logRotation!.maxSize,
          "max-file": String(opts.logRotation!.maxFile),
        });
      }),
      { numRuns: 150 },
    );
  });

  it("renders configs the real validator accepts (a few samples, YAML-special comments included)", function () {
    requireCommand("cloud-init", "cloud-init");
    const known = cloudConfigTopLevelKeys();
    for (const opts of fc.sample(validOptionsArb, { numRuns: 3, seed: 42 })) {
      const text = renderCloudConfig(opts);
      const result = cloudInitSchema(text);
      assert.equal(result.status, 0, result.stdout + result.stderr);
      // Which the validator does not check: an unknown top-level key passes it.
      const keys = Object.keys(parse(text) as Rendered);
      assert.deepEqual(
        keys.filter((k) => !known.has(k)),
        [],
      );
    }
  });

  it("is deterministic and does not mutate its input", function () {
    fc.assert(
      fc.property(validOptionsArb, (opts) => {
        const copy = structuredClone(opts);
        const first = renderCloudConfig(opts);
        assert.deepEqual(opts, copy);
        assert.equal(renderCloudConfig(copy), first);
      }),
      { numRuns: 50 },
    );
  });

  const KNOWN_OPTIONS = [
    "hostKey",
    "authorizedKeys",
    "dtmaPort",
    "backendPort",
    "controlSubnet",
    "toolsSubnet",
    "swapMb",
    "logRotation",
    "timezone",
  ];

  /** One option made invalid, with the option name the error must start with. */
  const notCidr = fc.string().filter((s) => !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(s));
  const badNumber = fc.oneof(
    fc.double({ noInteger: true }),
    fc.string(),
    fc.constant(null),
    fc.boolean(),
    fc.constant(Number.NaN),
  );
  type Mutation = [option: string, change: Record<string, unknown>];
  const invalid = (option: string, values: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation> =>
    values.map((v): Mutation => [option, { [option]: v }]);
  const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
    invalid("dtmaPort", fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 65536 }), badNumber)),
    invalid(
      "backendPort",
      fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 65536 }), badNumber, fc.constant(22)),
    ),
    invalid("controlSubnet", fc.oneof(notCidr, badNumber)),
    invalid("toolsSubnet", fc.oneof(notCidr, badNumber)),
    invalid("swapMb", fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 8193 }), badNumber)),
    invalid(
      "logRotation",
      fc.oneof(
        badNumber,
        fc.record({
          maxSize: fc.string().filter((s) => !/^[1-9]\d*[kmg]$/.test(s)),
          maxFile: fc.constant(3),
        }),
        fc.record({
          maxSize: fc.constant("10m"),
          maxFile: fc.oneof(fc.integer({ min: 101 }), badNumber),
        }),
      ),
    ),
    invalid(
      "timezone",
      fc.oneof(
        fc.string().filter((s) => !/^[A-Z]/.test(s)),
        badNumber,
      ),
    ),
    invalid(
      "authorizedKeys",
      fc.oneof(
        fc.constant([]),
        badNumber,
        fc.array(fc.oneof(fc.string(), badNumber), { minLength: 1, maxLength: 3 }),
      ),
    ),
    invalid(
      "hostKey",
      fc.oneof(
        badNumber,
        fc.record({ privateKeyOpenssh: fc.string(), publicKeyOpenssh: fc.string() }),
        hostKeyArb.map((k) => ({ ...k, privateKeyOpenssh: k.privateKeyOpenssh.slice(0, -60) })),
        fc
          .tuple(hostKeyArb, hostKeyArb)
          .map(([a, b]) => ({ ...a, publicKeyOpenssh: b.publicKeyOpenssh })),
      ),
    ),
    fc
      .string({ minLength: 1 })
      .filter((k) => !KNOWN_OPTIONS.includes(k))
      .chain((k) => invalid(k, fc.constant(1))),
  );

  it("throws a CloudInitError naming the option for any single invalid option", function () {
    fc.assert(
      fc.property(validOptionsArb, mutationArb, (opts, [option, change]) => {
        assert.throws(
          () => renderCloudConfig({ ...opts, ...change }),
          (err: unknown) => {
            assert.ok(err instanceof CloudInitError, `not a CloudInitError: ${String(err)}`);
            assert.ok(err.option.startsWith(option), `${option} expected, got: ${err.message}`);
            assert.ok(err.message.startsWith(`${err.option}: `));
            return true;
          },
        );
      }),
      { numRuns: 300 },
    );
  });

  it("throws only CloudInitError for arbitrary input", function () {
    fc.assert(
      fc.property(fc.anything(), (junk) => {
        assert.throws(
          () => renderCloudConfig(junk as CloudInitOptions),
          (err: unknown) => err instanceof CloudInitError,
        );
      }),
      { numRuns: 300 },
    );
  });
});
