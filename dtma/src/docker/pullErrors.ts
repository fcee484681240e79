// What a failed pull answers (issue 13, item 3): the class of the daemon's error, never its text.
// The daemon's message quotes the registry (`error parsing HTTP 404 response body: ... "<html>…"`),
// and a registry is whatever server the image names: its words would make the DTMA a proxy that
// reads pages off the host's network. The class is read from Docker's own phrasing only.

/** Docker's error classes (errdefs) as a pull can meet them. */
export type PullErrorClass =
  "not_found" | "unauthorized" | "forbidden" | "unavailable" | "deadline" | "unknown";

const BY_STATUS: [RegExp, PullErrorClass][] = [
  [/^401$/, "unauthorized"],
  [/^403$/, "forbidden"],
  [/^404$/, "not_found"],
  [/^(408|504)$/, "deadline"],
  [/^(429|5\d\d)$/, "unavailable"],
];

const BY_PHRASE: [RegExp, PullErrorClass][] = [
  [
    /dial tcp|connection refused|no such host|network is unreachable|connection reset|x509|tls:|EOF$/i,
    "unavailable",
  ],
  [
    /manifest unknown|name unknown|not found|does not exist|pull access denied|no such image/i,
    "not_found",
  ],
  [/unauthorized|authentication required|incorrect username or password/i, "unauthorized"],
  [/denied|forbidden/i, "forbidden"],
  [/deadline exceeded|timeout|timed out/i, "deadline"],
];

const DESCRIPTION: Record<PullErrorClass, string> = {
  not_found: "the registry has no such image, or the credentials may not read it",
  unauthorized: "the registry refused the credentials",
  forbidden: "the registry denied access",
  unavailable: "the registry could not be reached or failed",
  deadline: "the pull did not finish in time",
  unknown: "the daemon could not pull the image",
};

/** The class of a daemon's pull error message. */
export function pullErrorClass(message: string): PullErrorClass {
  // Only the daemon's own words, before anything it quotes from the registry.
  const own = message.split(/:\s*"|"\s*$/)[0] ?? "";
  const status = /(?:unexpected HTTP status|error parsing HTTP|HTTP status):?\s*(\d{3})/i.exec(
    own,
  )?.[1];
  if (status) {
    for (const [re, cls] of BY_STATUS) if (re.test(status)) return cls;
  }
  for (const [re, cls] of BY_PHRASE) if (re.test(own)) return cls;
  return "unknown";
}

export function describePullError(cls: PullErrorClass): string {
  return DESCRIPTION[cls];
}
