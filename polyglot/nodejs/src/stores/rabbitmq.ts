/**
 * RabbitMQ over AMQPS (verified against the stack's CA): one connection and a small pool of
 * confirm channels. A channel the broker closed (a passive declare of a missing queue closes it)
 * is dropped; a connection that closed makes the pool rebuild at the next use.
 */
import { randomUUID } from "node:crypto";

import type amqp from "amqplib";

import { InvalidInput, NotFound, quoted } from "../errors.js";
import { deliverableObject } from "../http/jsonrules.js";
import type { KvSecret } from "../vault/client.js";
import { lazyModule, ManagedPool, secretText, tlsEnabled } from "./pool.js";

const driver = lazyModule(async () => (await import("amqplib")).default);

/** Channels the broker or the connection closed: never handed out again. */
const closedChannels = new WeakSet<amqp.ConfirmChannel>();

export interface RabbitHandle {
  readonly connection: amqp.ChannelModel;
  readonly idle: amqp.ConfirmChannel[];
  closed: boolean;
}

export class RabbitPool extends ManagedPool<RabbitHandle> {
  readonly name = "rabbitmq" as const;

  protected async build(secret: KvSecret): Promise<RabbitHandle> {
    const tls = tlsEnabled(secret);
    const endpoint = this.ctx.settings.endpoints.rabbitmq;
    const vhost = secretText(secret, "vhost") || "/";
    const url = new URL(`${tls ? "amqps" : "amqp"}://${endpoint.host}:${tls ? endpoint.port : endpoint.plainPort}`);
    url.username = encodeURIComponent(secretText(secret, "user"));
    url.password = encodeURIComponent(secretText(secret, "password"));
    url.pathname = `/${encodeURIComponent(vhost)}`;
    url.searchParams.set("heartbeat", "30");
    const connection = await (await driver()).connect(url.toString(), {
      timeout: this.ctx.settings.connectTimeout * 1000,
      clientProperties: { connection_name: "devstack_nodejs" },
      ...(tls ? { ca: [this.ctx.ca], minVersion: "TLSv1.2" } : {}),
    });
    const handle: RabbitHandle = { connection, idle: [], closed: false };
    connection.on("error", (error: Error) => this.ctx.logger.warn({ dependency: this.name, reason: error.name }, "connection error"));
    connection.on("close", () => {
      handle.closed = true;
    });
    return handle;
  }

  protected async warmUp(handle: RabbitHandle): Promise<void> {
    await this.withChannelOf(handle, () => Promise.resolve());
  }

  protected async closeClient(handle: RabbitHandle): Promise<void> {
    handle.closed = true;
    await handle.connection.close();
  }

  protected override isDead(handle: RabbitHandle): boolean {
    return handle.closed;
  }

  protected override isAuthError(error: unknown): boolean {
    return error instanceof Error && error.message.includes("ACCESS_REFUSED");
  }

  private async acquire(handle: RabbitHandle): Promise<amqp.ConfirmChannel> {
    let channel = handle.idle.pop();
    if (channel === undefined) {
      channel = await handle.connection.createConfirmChannel();
      const opened = channel;
      // A channel error (404 on a passive declare) closes it; the error reaches the caller's promise.
      opened.on("error", () => undefined);
      opened.on("close", () => {
        const at = handle.idle.indexOf(opened);
        if (at >= 0) handle.idle.splice(at, 1);
        closedChannels.add(opened);
      });
    }
    return channel;
  }

  /** Back to the pool when it is still usable, else closed (what it held goes back to its queues). */
  private release(handle: RabbitHandle, channel: amqp.ConfirmChannel, reusable: boolean): void {
    if (closedChannels.has(channel)) return;
    if (reusable && !handle.closed && handle.idle.length < this.ctx.settings.channelPoolSize) handle.idle.push(channel);
    else void channel.close().catch(() => undefined);
  }

  private async withChannelOf<T>(handle: RabbitHandle, work: (channel: amqp.ConfirmChannel) => Promise<T>): Promise<T> {
    const channel = await this.acquire(handle);
    try {
      const result = await work(channel);
      this.release(handle, channel, true);
      return result;
    } catch (error) {
      this.release(handle, channel, false);
      throw error;
    }
  }

  /** A channel kept beyond the operation (consume holds its messages until the answer is sent):
   *  `release(true)` returns it to the pool, `release(false)` closes it. */
  lease<T>(what: string, work: (channel: amqp.ConfirmChannel) => Promise<T>): Promise<{ value: T; channel: amqp.ConfirmChannel; release: (reusable: boolean) => void }> {
    return this.operation(what, async (handle) => {
      const channel = await this.acquire(handle);
      const release = (reusable: boolean): void => this.release(handle, channel, reusable);
      try {
        return { value: await work(channel), channel, release };
      } catch (error) {
        release(false);
        throw error;
      }
    });
  }

  /** A confirm channel for one operation, bounded by the operation timeout. */
  channel<T>(what: string, work: (channel: amqp.ConfirmChannel) => Promise<T>, timeout?: number): Promise<T> {
    return this.operation(what, (handle) => this.withChannelOf(handle, work), timeout);
  }
}

const QUEUE_NAME = /^[A-Za-z0-9._-]{1,200}$/;
export const MAX_CONSUME = 100;

function checkQueue(name: string): void {
  if (!QUEUE_NAME.test(name) || name === "." || name === ".." || name.startsWith("amq.")) {
    throw new InvalidInput("a queue name is 1-200 of A-Z a-z 0-9 . _ - (not amq.*, . or ..)");
  }
}

function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown }).code === 404;
}

export interface ConsumedMessage {
  message_id: string | null;
  payload: Record<string, unknown>;
  redelivered: boolean;
}

export interface PendingConsume {
  readonly result: { queue: string; messages: ConsumedMessage[]; rejected: number };
  settle(delivered: boolean): void;
}

export class QueueService {
  constructor(
    private readonly pool: RabbitPool,
    private readonly timeoutSeconds = 5,
  ) {}

  /** Declare the queue (durable), publish persistent and mandatory, and wait for the confirm. */
  async publish(queue: string, payload: Record<string, unknown>): Promise<{ queue: string; message_id: string }> {
    checkQueue(queue);
    const messageId = randomUUID();
    const body = Buffer.from(JSON.stringify(payload));
    const returned = await this.pool.channel("publish", async (channel) => {
      await channel.assertQueue(queue, { durable: true });
      let bounced = false;
      const onReturn = (message: amqp.Message): void => {
        if (message.properties.messageId === messageId) bounced = true;
      };
      channel.on("return", onReturn);
      try {
        await new Promise<void>((resolve, reject) => {
          channel.publish("", queue, body, { messageId, contentType: "application/json", persistent: true, mandatory: true }, (error: unknown) => {
            if (error === null || error === undefined) resolve();
            else reject(error instanceof Error ? error : new Error("the broker refused the message"));
          });
        });
      } finally {
        channel.off("return", onReturn);
      }
      return bounced;
    });
    if (returned) throw new NotFound(`no queue ${quoted(queue)} received the message`);
    return { queue, message_id: messageId };
  }

  /** Up to `max` messages waiting now, not yet acknowledged: `settle(true)` acknowledges them
   *  (once the answer carrying them was written), `settle(false)` puts them back. Without either
   *  within the operation timeout, their channel is closed and they go back to the queue. A body
   *  that is not a JSON object is rejected at once without requeue, and counted. */
  async consume(queue: string, max: number): Promise<PendingConsume> {
    checkQueue(queue);
    let last: amqp.Message | undefined;
    const { value, channel, release } = await this.pool.lease("consume", async (channel) => {
      try {
        await channel.checkQueue(queue);
      } catch (error) {
        if (isNotFound(error)) throw new NotFound(`queue ${quoted(queue)} does not exist`);
        throw error;
      }
      const messages: ConsumedMessage[] = [];
      let rejected = 0;
      for (let i = 0; i < max; i++) {
        const message = await channel.get(queue, { noAck: false });
        if (message === false) break;
        // Not UTF-8, not JSON, not an object, or past what JSON can carry (put there by another
        // publisher): rejected without requeue, counted, never costing the good ones.
        const payload = deliverableObject(message.content);
        if (payload === undefined) {
          channel.reject(message, false);
          rejected += 1;
          continue;
        }
        const id = message.properties.messageId as unknown;
        messages.push({ message_id: typeof id === "string" ? id : null, payload, redelivered: message.fields.redelivered });
        last = message;
      }
      return { queue, messages, rejected };
    });
    let settled = false;
    const settle = (delivered: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        if (last !== undefined) {
          if (delivered) channel.ack(last, true);
          else channel.nack(last, true, true);
        }
        release(true);
      } catch {
        release(false); // a channel that closed meanwhile: its messages are back in the queue
      }
    };
    const timer = setTimeout(() => {
      if (!settled) {
        settled = true;
        release(false);
      }
    }, this.timeoutSeconds * 1000);
    timer.unref();
    return { result: value, settle };
  }

  async inspect(queue: string): Promise<{ queue: string; message_count: number; consumer_count: number }> {
    checkQueue(queue);
    return this.pool.channel("inspect queue", async (channel) => {
      try {
        const ok = await channel.checkQueue(queue);
        return { queue, message_count: ok.messageCount, consumer_count: ok.consumerCount };
      } catch (error) {
        if (isNotFound(error)) throw new NotFound(`queue ${quoted(queue)} does not exist`);
        throw error;
      }
    });
  }

  /** Health: a round trip in the application's vhost on a pooled channel. */
  async probe(timeout?: number): Promise<void> {
    await this.pool.channel(
      "health",
      async (channel) => {
        await channel.checkExchange("amq.direct");
      },
      timeout,
    );
  }
}
