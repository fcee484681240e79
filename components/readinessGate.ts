/**
 * The script the readiness gate runs on the droplet over SSH.
 *
 * `cloud-init status --wait` exits 0 when done, 2 when done with recoverable errors ("degraded":
 * e.g. a deprecated key) and 1 on failure. The host is usable in the first two cases; on a real
 * failure the log tail goes to stderr so it reaches the Pulumi operation's events.
 */
export const READINESS_SCRIPT = `set -u
status=0
cloud-init status --wait >/dev/null || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
  echo "cloud-init failed with exit code $status" >&2
  cloud-init status --long >&2 || true
  tail -n 60 /var/log/cloud-init-output.log >&2 || true
  exit 1
fi
docker version --format '{{.Server.Version}}' >/dev/null
`;
