/** Thrown for invalid renderer options; the message starts with the option's name. */
export class CloudInitError extends Error {
  constructor(
    /** The option at fault, e.g. `dtmaPort` or `authorizedKeys[1]`. */
    readonly option: string,
    reason: string,
  ) {
    super(`${option}: ${reason}`);
    this.name = "CloudInitError";
  }
}
