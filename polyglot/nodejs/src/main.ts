/**
 * The process: settings from the environment, the stack (Vault login, secrets, pools), then the
 * app on HTTP and HTTPS from one process, both on the loopback address by default. SIGTERM and
 * SIGINT close the listeners, the pools and the Vault token, then exit.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

import { createApp } from "./app.js";
import { loadSettings } from "./config.js";
import { ConfigurationError } from "./errors.js";
import { installProcessGuards } from "./guards.js";
import { answerClientError } from "./http/middleware.js";
import { createLogger } from "./log.js";
import { Metrics } from "./metrics.js";
import { DevStack } from "./stack.js";

function listen(server: http.Server | https.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const launched = performance.now();
  let settings;
  try {
    settings = loadSettings();
  } catch (error) {
    process.stderr.write(`${JSON.stringify({ level: "fatal", event: "bad configuration", error: error instanceof Error ? error.message : String(error) })}\n`);
    process.exit(2);
  }
  const logger = createLogger(settings.api.logLevel);
  installProcessGuards(logger);
  const metrics = new Metrics();
  const stack = new DevStack(settings, logger, metrics);
  try {
    await stack.start();
  } catch (error) {
    logger.fatal({ err: error }, error instanceof ConfigurationError ? "bad configuration" : "could not start");
    process.exit(1);
  }
  const app = createApp({ api: settings.api, stack, metrics, logger });
  const servers: (http.Server | https.Server)[] = [http.createServer(app)];
  const api = settings.api;
  if (api.tlsCertFile !== undefined && api.tlsKeyFile !== undefined) {
    servers.push(https.createServer({ cert: readFileSync(api.tlsCertFile), key: readFileSync(api.tlsKeyFile), minVersion: "TLSv1.2" }, app));
  }
  for (const server of servers) {
    server.on("clientError", answerClientError);
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
  }
  try {
    await listen(servers[0] as http.Server, api.httpPort, api.host);
    if (servers[1] !== undefined) await listen(servers[1], api.httpsPort, api.host);
  } catch (error) {
    logger.fatal({ err: error }, "cannot listen");
    await stack.close();
    process.exit(3);
  }
  stack.warmUp();
  logger.info(
    { http_port: api.httpPort, https_port: servers.length > 1 ? api.httpsPort : null, started_in_ms: Math.round(performance.now() - launched) },
    "app started",
  );

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    const closed = servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        }),
    );
    void Promise.all(closed)
      .then(() => stack.close())
      .finally(() => {
        logger.info("app stopped");
        process.exit(0);
      });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

await main();
