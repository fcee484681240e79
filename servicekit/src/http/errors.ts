/** Every error answer of the services: `error` is a stable code, `field` names the offending input. */
export interface ErrorBody {
  error: string;
  message: string;
  field?: string;
  /** More about the failure, e.g. a server's last log lines. */
  [detail: string]: unknown;
}

/** An error with the answer it deserves; anything else thrown is a 500 "internal". */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly details?: Record<string, unknown>,
    /** Headers the answer carries besides the JSON body's (Allow, Retry-After, Upgrade). */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
  }

  toJSON(): ErrorBody {
    return {
      ...this.details,
      error: this.code,
      message: this.message,
      ...(this.field ? { field: this.field } : {}),
    };
  }
}

/** 405: the path exists for other methods, named in `Allow`. */
export class MethodNotAllowed extends HttpError {
  constructor(
    method: string,
    readonly allowed: readonly string[],
    /** Every route of the path is public (health): the refusal needs no token either. */
    readonly publicPath: boolean,
  ) {
    super(405, "method_not_allowed", `${method} is not allowed here`, undefined, undefined, {
      allow: allowed.join(", "),
    });
  }
}
