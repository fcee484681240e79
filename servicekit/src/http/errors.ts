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
