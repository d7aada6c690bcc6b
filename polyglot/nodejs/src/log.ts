/**
 * JSON logs on stdout through pino, every record redacted on its way out (secret-looking keys,
 * tokens, PEM keys, credentials in URLs, and every secret value the process has read).
 */
import { pino, type Logger } from "pino";

import { redactor, type Redactor } from "./redaction.js";

export type { Logger } from "pino";

export function createLogger(
  level: string,
  options: { redactor?: Redactor; destination?: pino.DestinationStream } = {},
): Logger {
  const scrub = options.redactor ?? redactor;
  const config: pino.LoggerOptions = {
    level,
    base: { implementation: "nodejs" },
    messageKey: "event",
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      log: (record) => scrub.redact(record) as Record<string, unknown>,
    },
    hooks: {
      // The message itself goes through the same redaction as the fields.
      logMethod(args, method) {
        const redacted = args.map((arg: unknown) => (typeof arg === "string" ? scrub.redactText(arg) : arg));
        method.apply(this, redacted as Parameters<typeof method>);
      },
    },
  };
  return options.destination === undefined ? pino(config) : pino(config, options.destination);
}
