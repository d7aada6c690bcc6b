import type { Logger } from "./log.js";

/**
 * An unhandled rejection is logged and the process keeps serving: Express 5 already routes a
 * handler's rejection to the error middleware, so one that escapes is a bug in background work,
 * never a reason to drop every request in flight.
 */
export function installProcessGuards(logger: Logger): void {
  process.on("unhandledRejection", (reason: unknown) => {
    logger.error({ err: reason }, "unhandled rejection (the process keeps serving)");
  });
}
