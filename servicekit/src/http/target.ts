// The request target as RFC 9112 §3.2 allows it, parsed without WHATWG URL's guesses: an
// origin-form target (`/path?query`) is a path however it looks — `//x/tools` is the path
// "//x/tools", never the host x — and an absolute-form one (`http://host/path`) is routed by its
// path. Anything else (`*`, authority-form, garbage, an invalid port) cannot name a route.

export interface Target {
  pathname: string;
  /** The query with its leading `?`, or "". */
  search: string;
}

const ABSOLUTE = /^https?:\/\//i;

/** The path and query of a request target, or undefined when it is neither form. */
export function parseTarget(target: string): Target | undefined {
  if (target.startsWith("/")) {
    const q = target.indexOf("?");
    return q < 0
      ? { pathname: target, search: "" }
      : { pathname: target.slice(0, q), search: target.slice(q) };
  }
  if (!ABSOLUTE.test(target) || !URL.canParse(target)) return undefined;
  const url = new URL(target);
  return { pathname: url.pathname, search: url.search };
}
