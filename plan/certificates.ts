/**
 * Certificates made with openssl, as the platform CA makes them: stand-ins for the tls provider's
 * outputs under mocks (real PEM, so what reads them parses them), and test material for the
 * backend over TLS.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * A CA and a server certificate signed by it for 127.0.0.1, localhost and `ips` (ECDSA P-256).
 */
export function certificates(ips: string[] = []): { ca: string; cert: string; key: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "box-tls-"));
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run([
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=test toolbox CA",
    ]);
    run(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=toolbox"]);
    writeFileSync(
      path.join(dir, "ext"),
      `subjectAltName=${["IP:127.0.0.1", "DNS:localhost", ...ips.map((ip) => `IP:${ip}`)].join(",")}\nextendedKeyUsage=serverAuth\n`,
    );
    run([
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.pem",
      "-days",
      "1",
      "-extfile",
      "ext",
    ]);
    const read = (f: string) => readFileSync(path.join(dir, f), "utf8");
    return { ca: read("ca.pem"), cert: read("server.pem"), key: read("server.key") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Material = { ca: string; cert: string; key: string };
let cached: Material | undefined;

/**
 * One CA and leaf for the mocks, the same for every process on this machine (kept in the temp
 * folder), so two evaluations — a plan and the plan of a changed copy — render the same
 * certificates. Made once by whichever process comes first.
 */
export function mockCertificates(): Material {
  if (cached) return cached;
  const file = path.join(
    tmpdir(),
    `agentopia-toolboxes-mock-certificates-${process.getuid?.() ?? 0}.json`,
  );
  try {
    const kept = JSON.parse(readFileSync(file, "utf8")) as Partial<Material>;
    if (kept.ca && kept.cert && kept.key) return (cached = kept as Material);
  } catch {
    // made below
  }
  const made = certificates();
  try {
    writeFileSync(file, JSON.stringify(made), { flag: "wx", mode: 0o600 });
    cached = made;
  } catch {
    // Another process made them first: use those.
    cached = JSON.parse(readFileSync(file, "utf8")) as Material;
  }
  return cached;
}
