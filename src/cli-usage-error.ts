/** A command line the `byok` CLI cannot run as given (exit code 2, with the command's usage). */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}
