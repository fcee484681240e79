/** Every error answer of the services: `error` is a stable code, `field` names the offending input. */
export interface ErrorBody {
  error: string;
  message: string;
  field?: string;
}

/** An error with the answer it deserves; anything else thrown is a 500 "internal". */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  toJSON(): ErrorBody {
    return {
      error: this.code,
      message: this.message,
      ...(this.field ? { field: this.field } : {}),
    };
  }
}
