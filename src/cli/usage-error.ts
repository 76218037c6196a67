import { ByokError } from '../errors.ts';

/** A command line the `byok` CLI cannot run as given (code `usage`, exit code 2, with the command's usage). */
export class UsageError extends ByokError {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super('usage', message);
    this.name = 'UsageError';
  }
}
