/**
 * The error tree every layer raises, mapped to HTTP statuses in one place (problems.ts):
 *
 * ```
 * DevStackError                    500
 * ├── ConfigurationError           raised at start, never per request
 * ├── InvalidInput                 422
 * ├── NotFound                     404
 * └── DependencyError              .dependency, .retryAfter
 *     ├── DependencyUnavailable    503 (+ Retry-After)
 *     │   └── VaultError           Vault answered an error status
 *     └── DependencyTimeout        504
 * ```
 *
 * Messages hold no secret and no raw server text; the original error is the `cause`.
 */

export class DevStackError extends Error {
  readonly status: number = 500;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ConfigurationError extends DevStackError {}

export class InvalidInput extends DevStackError {
  override readonly status = 422;
}

export class NotFound extends DevStackError {
  override readonly status = 404;
}

export type DependencyName = "vault" | "postgres" | "mysql" | "mongodb" | "redis" | "rabbitmq";

export class DependencyError extends DevStackError {
  readonly retryAfter: number = 5;
  constructor(
    readonly dependency: DependencyName,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`${dependency}: ${reason}`, options);
  }
}

export class DependencyUnavailable extends DependencyError {
  override readonly status = 503;
}

export class DependencyTimeout extends DependencyError {
  override readonly status = 504;
}

export class VaultError extends DependencyUnavailable {
  constructor(
    method: string,
    path: string,
    readonly httpStatus: number,
    readonly errors: readonly string[],
  ) {
    const detail = errors.map((e) => e.trim()).join("; ") || "no detail";
    super("vault", `${method} ${path} answered ${httpStatus}: ${detail}`);
  }
}

/** A short, safe description of an error: its kind, never raw server text. */
export function describe(error: unknown): string {
  if (error instanceof DevStackError) return error.message;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && /^[A-Z_0-9]+$/.test(code)) {
      if (code.includes("CERT") || code.includes("SELF_SIGNED") || code.startsWith("ERR_TLS")) {
        return "TLS certificate verification failed";
      }
      return `${error.name}: ${code}`;
    }
    return error.name;
  }
  return typeof error;
}

/** A string as Python's repr() writes it, so that messages read the same in every implementation
 *  (`cache key 'x' does not exist`). */
export function quoted(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = "";
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (char === "\\") out += "\\\\";
    else if (char === quote) out += `\\${quote}`;
    else if (char === "\n") out += "\\n";
    else if (char === "\r") out += "\\r";
    else if (char === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += char;
  }
  return `${quote}${out}${quote}`;
}
