import { DtmaError, DtmaUnavailable } from "@agentopia-toolboxes/dtma/client";
import { HttpError } from "@agentopia-toolboxes/servicekit/http";

/**
 * What a DTMA failure means to the control plane: its refusals keep their status, code, message
 * and field (they name the caller's input); its own failures are 502 `dtma_error`; a DTMA that
 * cannot be reached or does not answer in time is 503 `dtma_unavailable` with the reason.
 */
function fromDtma(err: unknown): unknown {
  if (err instanceof DtmaUnavailable) {
    return new HttpError(503, "dtma_unavailable", `the DTMA is unavailable: ${err.reason}`);
  }
  if (err instanceof DtmaError) {
    if (err.status >= 500) {
      return new HttpError(502, "dtma_error", `the DTMA failed: ${err.body.message}`);
    }
    return new HttpError(err.status, err.body.error, err.body.message, err.body.field);
  }
  return err;
}

/** Runs a DTMA call and maps its failure. */
export async function viaDtma<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw fromDtma(err);
  }
}
