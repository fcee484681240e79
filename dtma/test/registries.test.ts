import assert from "node:assert/strict";
import fc from "fast-check";
import { pullErrorClass } from "../src/docker/pullErrors";
import { DEFAULT_REGISTRIES, parseImageRef, RegistryAllowList } from "../src/tools/image";

const allowed = (list: string, image: string) =>
  new RegistryAllowList(list).refusal(parseImageRef(image)) === undefined;

describe("registries and image references (issue 13, items 3 and 6)", () => {
  it("the defaults admit the public registries and nothing on the host's network", () => {
    for (const image of [
      "busybox",
      "acme/tool:1",
      "docker.io/acme/tool:1",
      "index.docker.io/acme/tool",
      "ghcr.io/acme/tool:1",
      "GHCR.io/acme/tool:1",
      "quay.io/a/b@sha256:" + "a".repeat(64),
      "public.ecr.aws/a/b:1",
      "registry.gitlab.com/a/b/c:1",
      "mcr.microsoft.com/a/b:1",
      "gcr.io/p/i:1",
      "eu.gcr.io/p/i:1",
      "europe-west1-docker.pkg.dev/p/r/i:1",
    ])
      assert.ok(allowed(DEFAULT_REGISTRIES, image), image);
    for (const image of [
      "localhost/x",
      "localhost:5000/x",
      "reg.localhost:5000/x",
      "127.0.0.1:5000/x",
      "127.1/x",
      "0x7f.0.0.1/x",
      "2130706433:80/x",
      "169.254.169.254/x",
      "10.0.0.1/x",
      "172.16.0.1:5000/x",
      "192.168.0.1/x",
      "100.64.0.1/x",
      "0.0.0.0/x",
      "8.8.8.8/x",
      "ghcr.io:22/x",
      "pkg.dev/x",
      "evil.example.com/x",
      "ghcr.io.evil.example.com/x",
    ])
      assert.ok(!allowed(DEFAULT_REGISTRIES, image), image);
  });

  it("a special range is admitted only by an entry that names it or a range of its kind", () => {
    assert.ok(allowed("127.0.0.1:5000", "127.0.0.1:5000/x"));
    assert.ok(!allowed("127.0.0.1:5000", "127.0.0.1:5001/x"));
    assert.ok(allowed("127.0.0.1", "127.0.0.1/x"));
    assert.ok(allowed("10.0.0.0/8", "10.9.8.7:5000/x"));
    assert.ok(!allowed("10.0.0.0/8", "127.0.0.1/x"));
    // 0.0.0.0/0 lists public addresses, not loopback, private or link-local ones.
    assert.ok(allowed("0.0.0.0/0", "8.8.8.8/x"));
    for (const image of ["127.0.0.1/x", "169.254.169.254/x", "10.0.0.1/x", "192.168.1.1/x"])
      assert.ok(!allowed("0.0.0.0/0", image), image);
    assert.ok(allowed("localhost:5000", "localhost:5000/x"));
    // A wildcard names a domain of two labels or more, never a top-level domain or localhost.
    for (const entry of ["*.localhost", "*.dev", "*"])
      assert.throws(() => new RegistryAllowList(entry), entry);
  });

  it("Docker's grammar: bad references throw; a reference without tag or digest pulls :latest", () => {
    for (const bad of ["UPPER/busybox", "a..b/x", "host:99999999999/x", "host:0/x", "x:", "-x", ""])
      assert.throws(() => parseImageRef(bad), bad);
    assert.equal(parseImageRef("busybox").pullRef, "busybox:latest");
    assert.equal(parseImageRef("acme/t:1").pullRef, "acme/t:1");
    const pinned = `acme/t@sha256:${"b".repeat(64)}`;
    assert.equal(parseImageRef(pinned).pullRef, pinned);
  });

  it("never throws anything but its own error on any string (fast-check)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        try {
          const ref = parseImageRef(s);
          new RegistryAllowList(DEFAULT_REGISTRIES).refusal(ref);
        } catch (err) {
          assert.equal((err as Error).constructor.name, "ImageRefError");
        }
      }),
    );
  });

  it("classifies the daemon's pull errors by its own words, not the registry's", () => {
    const cases: [string, string][] = [
      [
        "error parsing HTTP 404 response body: invalid character '<' looking for beginning of value: \"<html>denied unauthorized</html>\"",
        "not_found",
      ],
      [
        "error parsing HTTP 403 response body: invalid character '<' looking for beginning of value: \"<html>not found</html>\"",
        "forbidden",
      ],
      ["received unexpected HTTP status: 500 Internal Server Error", "unavailable"],
      [
        'Get "http://127.0.0.1:5997/v2/": dial tcp 127.0.0.1:5997: connect: connection refused',
        "unavailable",
      ],
      ["unauthorized: authentication required", "unauthorized"],
      ["manifest unknown: manifest unknown", "not_found"],
      [
        "pull access denied for x, repository does not exist or may require 'docker login'",
        "not_found",
      ],
      ["denied: requested access to the resource is denied", "forbidden"],
      ["something else entirely", "unknown"],
    ];
    for (const [message, cls] of cases) assert.equal(pullErrorClass(message), cls, message);
  });
});
