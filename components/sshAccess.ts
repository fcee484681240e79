/**
 * SSH material for the Docker provider's `ssh://` host.
 *
 * The Docker provider shells out to `ssh`, which reads keys and known hosts only from files, so
 * the automation service's private key and the droplet's pinned host key are written into a
 * private directory (0700, files 0600) on the machine that runs Pulumi. Strict host key checking
 * against that one pinned key means even the first connection is verified.
 */
import * as pulumi from "@pulumi/pulumi";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface SshAccessArgs {
  /** Directory for the key and known_hosts files. */
  dir: string;
  /** File name stem, unique per toolbox. */
  name: string;
  host: pulumi.Input<string>;
  /** The droplet's pinned host public key, OpenSSH format. */
  hostPublicKey: pulumi.Input<string>;
  /** The automation service's private key, OpenSSH format (secret). */
  privateKey: pulumi.Input<string>;
}

function sshOptions(keyFile: string, knownHostsFile: string): string[] {
  return [
    "-i",
    keyFile,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${knownHostsFile}`,
  ];
}

/** Writes the files once the values are known; the options depend on that write. */
export function dockerSshOptions(args: SshAccessArgs): pulumi.Output<string[]> {
  const keyFile = join(args.dir, `${args.name}.key`);
  const knownHostsFile = join(args.dir, `${args.name}.known_hosts`);
  return pulumi
    .all([args.host, args.hostPublicKey, args.privateKey])
    .apply(([host, hostPublicKey, privateKey]) => {
      mkdirSync(args.dir, { recursive: true, mode: 0o700 });
      chmodSync(args.dir, 0o700);
      const key = privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`;
      writeFileSync(keyFile, key, { mode: 0o600 });
      writeFileSync(knownHostsFile, `${host} ${hostPublicKey.trim()}\n`, { mode: 0o600 });
      return sshOptions(keyFile, knownHostsFile);
    });
}
