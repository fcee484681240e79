import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import {
  CLOUD_INIT_DEFAULTS,
  CloudInitError,
  renderCloudConfig,
  type CloudInitOptions,
} from "../cloud-init";
import {
  cloudConfigTopLevelKeys,
  cloudInitSchema,
  requireCommand,
  run,
  shellcheck,
  sshKeygenEd25519,
  tempDir,
} from "./helpers/shell";

interface WriteFile {
  path: string;
  permissions: string;
  content: string;
}

interface CloudConfig {
  timezone: string;
  packages: string[];
  swap?: { filename: string; size: string };
  disable_root: boolean;
  ssh_pwauth: boolean;
  allow_public_ssh_keys: boolean;
  users: { name: string; lock_passwd?: boolean; ssh_authorized_keys: string[] }[];
  ssh_deletekeys: boolean;
  ssh_genkeytypes: string[];
  ssh_keys: Record<string, string>;
  write_files: WriteFile[];
  runcmd: string[];
}

function fileAt(config: CloudConfig, path: string): string {
  const file = config.write_files.find((f) => f.path === path);
  assert.ok(file, `write_files has no ${path}`);
  return file.content;
}

/** Every key of every mapping in a parsed YAML document. */
function allKeys(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(allKeys);
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).flatMap(([key, inner]) => [key, ...allKeys(inner)]);
  }
  return [];
}

describe("cloud-init renderer", function () {
  const dir = tempDir("cloud-init-keys-");
  const hostKey = sshKeygenEd25519(dir.path, "host");
  const otherHostKey = sshKeygenEd25519(dir.path, "other-host");
  const operator = sshKeygenEd25519(dir.path, "operator", "operator@agentopia").publicKeyOpenssh;
  const automation = sshKeygenEd25519(dir.path, "automation", "automation").publicKeyOpenssh;
  after(() => dir.remove());

  const base: CloudInitOptions = { hostKey, authorizedKeys: [automation, operator] };
  const text = renderCloudConfig(base);
  const config = parse(text) as CloudConfig;

  describe("the real validator (cloud-init schema)", function () {
    before(() => requireCommand("cloud-init", "cloud-init"));

    it("accepts the config rendered with defaults", function () {
      const result = cloudInitSchema(text);
      assert.equal(result.status, 0, result.stdout + result.stderr);
    });

    it("accepts a config with every option set and swap off", function () {
      const custom = renderCloudConfig({
        ...base,
        dtmaPort: 31000,
        backendPort: 8443,
        controlSubnet: "10.20.0.0/24",
        toolsSubnet: "192.168.64.0/20",
        swapMb: 0,
        logRotation: { maxSize: "50m", maxFile: 5 },
        timezone: "Europe/Paris",
      });
      const result = cloudInitSchema(custom);
      assert.equal(result.status, 0, result.stdout + result.stderr);
    });

    it("rejects a schema error, so the checks above can fail", function () {
      const broken = text.replace("size: 1024M", "size: lots");
      assert.notEqual(broken, text);
      const result = cloudInitSchema(broken);
      assert.equal(result.status, 1);
      assert.match(result.stdout + result.stderr, /swap\.size/);
    });
  });

  describe("top-level keys", function () {
    before(() => requireCommand("cloud-init", "cloud-init"));

    it("are all keys cloud-init's schema knows", function () {
      const known = cloudConfigTopLevelKeys();
      assert.deepEqual(
        Object.keys(config).filter((key) => !known.has(key)),
        [],
      );
    });

    it("a typo the validator lets through is not one of them", function () {
      const typo = text.replace(/^packages:/m, "pakages:");
      assert.equal(cloudInitSchema(typo).status, 0, "cloud-init schema still passes a typo");
      assert.ok(!cloudConfigTopLevelKeys().has("pakages"));
    });
  });

  describe("shell snippets pass shellcheck", function () {
    before(() => requireCommand("shellcheck", "shellcheck"));

    it("runcmd, as the sh script cloud-init makes of it", function () {
      const script = ["#!/bin/sh", ...config.runcmd].join("\n") + "\n";
      const result = shellcheck(script, "sh");
      assert.equal(result.status, 0, result.stdout);
    });

    const scripts = config.write_files.filter((f) => f.content.startsWith("#!"));
    it("finds the firewall and setup scripts", function () {
      assert.deepEqual(
        scripts.map((f) => f.path),
        ["/usr/local/sbin/toolbox-firewall", "/usr/local/sbin/toolbox-host-setup"],
      );
    });
    for (const file of scripts) {
      it(file.path, function () {
        assert.match(file.content, /^#!\/bin\/bash\n/);
        assert.equal(file.permissions, "0755");
        const result = shellcheck(file.content, "bash");
        assert.equal(result.status, 0, result.stdout);
      });
    }
  });

  describe("content", function () {
    it("starts with #cloud-config and stays far under the 64 KiB limit", function () {
      assert.ok(text.startsWith("#cloud-config\n"));
      assert.ok(Buffer.byteLength(text) < 16 * 1024, `${Buffer.byteLength(text)} bytes`);
    });

    it("is deterministic", function () {
      assert.equal(renderCloudConfig(base), text);
    });

    it("installs Docker from Ubuntu and unattended-upgrades", function () {
      assert.ok(config.packages.includes("docker.io"));
      assert.ok(config.packages.includes("unattended-upgrades"));
      assert.equal(config.timezone, "UTC");
    });

    it("writes daemon.json with live-restore and log rotation, before Docker is installed", function () {
      const daemon = JSON.parse(fileAt(config, "/etc/docker/daemon.json")) as Record<
        string,
        unknown
      >;
      assert.equal(daemon["live-restore"], true);
      assert.equal(daemon["log-driver"], "json-file");
      assert.deepEqual(daemon["log-opts"], { "max-size": "10m", "max-file": "3" });
      assert.equal(daemon["no-new-privileges"], true);
    });

    it("carries custom log rotation into daemon.json", function () {
      const custom = parse(
        renderCloudConfig({ ...base, logRotation: { maxSize: "1g", maxFile: 7 } }),
      ) as CloudConfig;
      const daemon = JSON.parse(fileAt(custom, "/etc/docker/daemon.json")) as Record<
        string,
        unknown
      >;
      assert.deepEqual(daemon["log-opts"], { "max-size": "1g", "max-file": "7" });
    });

    it("hardens sshd: keys only, root by key, no passwords", function () {
      const sshd = fileAt(config, "/etc/ssh/sshd_config.d/01-toolbox-hardening.conf");
      for (const line of [
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
      ]) {
        assert.ok(sshd.split("\n").includes(line), line);
      }
      assert.equal(sshd.match(/^HostKey /gm)?.length, 1);
      assert.equal(config.ssh_pwauth, false);
      assert.equal(config.disable_root, false);
      assert.equal(config.allow_public_ssh_keys, false);
    });

    it("authorizes exactly the given keys, for root only", function () {
      assert.deepEqual(config.users, [
        {
          name: "root",
          lock_passwd: true,
          ssh_authorized_keys: [automation.trim(), operator.trim()],
        },
      ]);
    });

    it("creates no password anywhere", function () {
      const keys = allKeys(config);
      for (const forbidden of ["passwd", "plain_text_passwd", "hashed_passwd", "password"]) {
        assert.ok(!keys.includes(forbidden), forbidden);
      }
      assert.ok(!keys.includes("chpasswd"));
      assert.doesNotMatch(text, /lock_passwd: false/);
    });

    it("pins the host key and offers no other key type", function () {
      assert.deepEqual(Object.keys(config.ssh_keys).sort(), ["ed25519_private", "ed25519_public"]);
      assert.equal(config.ssh_keys.ed25519_private, hostKey.privateKeyOpenssh);
      assert.equal(config.ssh_keys.ed25519_public, hostKey.publicKeyOpenssh.trim());
      assert.equal(config.ssh_deletekeys, true);
      assert.deepEqual(config.ssh_genkeytypes, ["ed25519"]);
    });

    it("carries no secret but the host key", function () {
      assert.equal(text.match(/PRIVATE KEY-----/g)?.length, 2);
      assert.equal(text.split(hostKey.privateKeyOpenssh.split("\n")[1]).length, 2);
    });

    it("sizes swap for a 512 MB droplet, tunes swappiness, and can turn swap off", function () {
      assert.deepEqual(config.swap, { filename: "/swapfile", size: "1024M" });
      assert.match(fileAt(config, "/etc/sysctl.d/60-toolbox.conf"), /^vm\.swappiness = 10$/m);
      const noSwap = parse(renderCloudConfig({ ...base, swapMb: 0 })) as CloudConfig;
      assert.equal(noSwap.swap, undefined);
      assert.doesNotMatch(fileAt(noSwap, "/etc/sysctl.d/60-toolbox.conf"), /swappiness/);
    });

    it("enables unattended upgrades for security updates only", function () {
      const periodic = fileAt(config, "/etc/apt/apt.conf.d/20auto-upgrades");
      assert.match(periodic, /^APT::Periodic::Unattended-Upgrade "1";$/m);
      assert.match(periodic, /^APT::Periodic::Update-Package-Lists "1";$/m);
      const origins = fileAt(config, "/etc/apt/apt.conf.d/52toolbox-security-only");
      assert.match(origins, /^#clear Unattended-Upgrade::Allowed-Origins;$/m);
      const allowed = origins.match(/"[^"]+";/g) ?? [];
      assert.ok(allowed.length >= 1);
      for (const origin of allowed.filter((o) => o.includes("distro_codename"))) {
        assert.match(origin, /security";$/);
      }
    });

    it("blocks metadata, host and DTMA in the firewall script", function () {
      const fw = fileAt(config, "/usr/local/sbin/toolbox-firewall");
      for (const rule of [
        "-A DOCKER-USER -d 169.254.0.0/16 -j REJECT",
        "-A DOCKER-USER -s 172.31.0.0/16 -p tcp --dport 30000 -j REJECT",
        "-A DOCKER-USER -s 172.31.0.0/16 -d 172.30.0.0/24 -j REJECT",
        "-A DOCKER-USER ! -s 172.30.0.0/24 -d 172.30.0.0/24 -p tcp --dport 30000 -j REJECT",
        "-A TOOLBOX-INPUT -i docker0 -j REJECT",
        "-A TOOLBOX-INPUT -i br-+ -j REJECT",
        "-A TOOLBOX-INPUT -s 172.31.0.0/16 -j REJECT",
        "-A TOOLBOX-INPUT -s 172.30.0.0/24 -j REJECT",
      ]) {
        assert.ok(fw.split("\n").includes(rule), rule);
      }
      assert.match(fw, /ip6tables/);
    });

    it("re-applies the firewall before dockerd starts and after every Docker restart", function () {
      const unit = fileAt(config, "/etc/systemd/system/toolbox-firewall.service");
      for (const line of [
        "After=docker.service",
        "PartOf=docker.service",
        "WantedBy=docker.service",
        "ExecStart=/usr/local/sbin/toolbox-firewall apply",
        "RemainAfterExit=yes",
      ]) {
        assert.ok(unit.split("\n").includes(line), line);
      }
      const dropIn = fileAt(
        config,
        "/etc/systemd/system/docker.service.d/10-toolbox-firewall.conf",
      );
      assert.match(dropIn, /^ExecStartPre=\/usr\/local\/sbin\/toolbox-firewall apply$/m);
      assert.match(dropIn, /^Wants=toolbox-firewall\.service$/m);
    });

    it("writes the files Docker and sshd read before installing packages", function () {
      const paths = config.write_files.map((f) => f.path);
      assert.ok(paths.indexOf("/etc/docker/daemon.json") >= 0);
      // write_files runs in cloud-init's init stage, packages and runcmd in the final stage.
      assert.deepEqual(config.runcmd, ["/usr/local/sbin/toolbox-host-setup"]);
    });

    it("ends first-boot setup with verification and a marker", function () {
      const setup = fileAt(config, "/usr/local/sbin/toolbox-host-setup").trimEnd().split("\n");
      assert.ok(setup.includes("set -euo pipefail"));
      assert.ok(setup.includes("/usr/local/sbin/toolbox-firewall verify"));
      assert.ok(
        setup.indexOf("systemctl restart docker.service") <
          setup.indexOf("/usr/local/sbin/toolbox-firewall verify"),
      );
      assert.equal(setup.at(-1), "touch /var/lib/toolbox/host-ready");
    });

    it("puts custom ports and subnets into the rules", function () {
      const custom = parse(
        renderCloudConfig({
          ...base,
          dtmaPort: 31000,
          controlSubnet: "10.20.0.0/24",
          toolsSubnet: "192.168.64.0/20",
        }),
      ) as CloudConfig;
      const fw = fileAt(custom, "/usr/local/sbin/toolbox-firewall");
      assert.ok(fw.includes("-A DOCKER-USER -s 192.168.64.0/20 -p tcp --dport 31000 -j REJECT"));
      assert.ok(
        fw.includes("-A DOCKER-USER ! -s 10.20.0.0/24 -d 10.20.0.0/24 -p tcp --dport 31000"),
      );
      assert.ok(!fw.includes("30000"));
    });
  });

  describe("defaults", function () {
    it("are the documented ones", function () {
      assert.deepEqual(CLOUD_INIT_DEFAULTS, {
        dtmaPort: 30000,
        backendPort: 3000,
        controlSubnet: "172.30.0.0/24",
        toolsSubnet: "172.31.0.0/16",
        swapMb: 1024,
        logRotation: { maxSize: "10m", maxFile: 3 },
        timezone: "UTC",
      });
      assert.ok(Object.isFrozen(CLOUD_INIT_DEFAULTS));
      assert.ok(Object.isFrozen(CLOUD_INIT_DEFAULTS.logRotation));
    });
  });

  describe("invalid options", function () {
    const cases: [string, Partial<Record<keyof CloudInitOptions, unknown>>, string][] = [
      ["no keys", { authorizedKeys: [] }, "authorizedKeys: at least one key is required"],
      [
        "a private key as a public one",
        { authorizedKeys: [hostKey.privateKeyOpenssh] },
        "authorizedKeys[0]:",
      ],
      [
        "a key with a newline",
        { authorizedKeys: [`${operator.trim()}\n${automation}`] },
        "authorizedKeys[0]: contains control characters",
      ],
      [
        "a duplicate key",
        { authorizedKeys: [operator, operator.replace("operator@", "x@")] },
        "authorizedKeys[1]: duplicates an earlier key",
      ],
      ["a port out of range", { dtmaPort: 70000 }, "dtmaPort: must be an integer 1-65535"],
      ["a port as a string", { backendPort: "3000" }, "backendPort: must be an integer 1-65535"],
      ["equal ports", { backendPort: 30000 }, "backendPort: must differ from dtmaPort"],
      ["not a CIDR", { toolsSubnet: "172.31.0.0" }, "toolsSubnet: not an IPv4 CIDR"],
      [
        "host bits set",
        { controlSubnet: "172.30.0.1/24" },
        "controlSubnet: host bits must be zero",
      ],
      [
        "a public subnet",
        { toolsSubnet: "8.8.0.0/16" },
        "toolsSubnet: must lie within a private range",
      ],
      [
        "overlapping subnets",
        { toolsSubnet: "172.30.0.0/16" },
        "toolsSubnet: overlaps controlSubnet",
      ],
      [
        "docker0's subnet",
        { toolsSubnet: "172.17.0.0/16" },
        "toolsSubnet: overlaps Docker's default bridge",
      ],
      ["too much swap", { swapMb: 9000 }, "swapMb: must be an integer 0-8192"],
      ["a bad log size", { logRotation: { maxSize: "10MB", maxFile: 3 } }, "logRotation.maxSize:"],
      ["a bad timezone", { timezone: "Mars/Olympus" }, "timezone: not an IANA timezone name"],
      ["an unknown option", { dtmaport: 1 } as never, "dtmaport: unknown option"],
      [
        "an RSA host key",
        { hostKey: { ...hostKey, publicKeyOpenssh: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7" } },
        "hostKey.publicKeyOpenssh: not an ssh-ed25519 public key",
      ],
      [
        "a mangled private key",
        {
          hostKey: {
            ...hostKey,
            privateKeyOpenssh: hostKey.privateKeyOpenssh.replace(/\n[A-Za-z0-9+/]{8}/, "\n"),
          },
        },
        "hostKey.privateKeyOpenssh:",
      ],
      [
        "keys that are not a pair",
        { hostKey: { ...hostKey, publicKeyOpenssh: otherHostKey.publicKeyOpenssh } },
        "hostKey: the private and public keys are not a pair",
      ],
    ];
    for (const [what, override, message] of cases) {
      it(`names the option for ${what}`, function () {
        assert.throws(
          () => renderCloudConfig({ ...base, ...override } as CloudInitOptions),
          (err: unknown) => {
            assert.ok(err instanceof CloudInitError, String(err));
            assert.ok(err.message.startsWith(message), err.message);
            return true;
          },
        );
      });
    }

    it("rejects a passphrase-protected private host key", function () {
      const made = sshKeygenEd25519(dir.path, "encrypted");
      const result = run("ssh-keygen", [
        "-q",
        "-p",
        "-P",
        "",
        "-N",
        "not-empty",
        "-f",
        `${dir.path}/encrypted`,
      ]);
      assert.equal(result.status, 0, result.stderr);
      const privateKeyOpenssh = readFileSync(`${dir.path}/encrypted`, "utf8");
      assert.throws(
        () => renderCloudConfig({ ...base, hostKey: { ...made, privateKeyOpenssh } }),
        /^CloudInitError: hostKey\.privateKeyOpenssh: must not be passphrase-protected$/,
      );
    });
  });
});
