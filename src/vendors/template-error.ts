/**
 * TemplateError in a module of its own: the parser (template-parse.ts, loaded on demand) and the
 * loader (templates.ts) both throw it, and neither imports the other's dependencies for it.
 */
import { ByokError } from '../errors.ts';

/**
 * A template file (or the template policy) that cannot be used; code `template`. The message
 * names the file (a name inside templates/, or the setting) and the field path.
 */
export class TemplateError extends ByokError {
  readonly file: string;
  readonly field: string | undefined;

  constructor(file: string, field: string | undefined, detail: string) {
    super('template', field ? `${file}: ${field}: ${detail}` : `${file}: ${detail}`, { file, ...(field ? { field } : {}) });
    this.name = 'TemplateError';
    this.file = file;
    this.field = field;
  }
}
