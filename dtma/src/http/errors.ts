import type { ApiError } from "../api";

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

  toJSON(): ApiError {
    return {
      error: this.code,
      message: this.message,
      ...(this.field ? { field: this.field } : {}),
    };
  }
}
