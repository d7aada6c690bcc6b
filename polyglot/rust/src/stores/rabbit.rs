//! RabbitMQ through lapin on the AMQPS port, verified against the stack's CA: durable queues,
//! persistent messages published with `mandatory` and publisher confirms, a small channel pool.
//! Consumed messages are acknowledged only once the answer carrying them was written
//! ([`Settle`]), so a message is never acknowledged and lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::publisher_confirm::Confirmation;
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{bounded, Context, Managed};
use crate::problems::{ApiError, Dependency};
use crate::vault::KvSecret;

const DEP: Dependency = Dependency::Rabbitmq;
/// The largest AMQP frame we accept (bytes); the broker's default is 128 KiB.
const FRAME_MAX: u32 = 16_384;

type ChannelPool = Arc<Mutex<Vec<(usize, Channel)>>>;

pub struct Rabbit {
    ctx: Context,
    managed: Managed<Connection>,
    channels: ChannelPool,
}

#[derive(Debug, Serialize)]
pub struct PublishResult {
    pub queue: String,
    pub message_id: String,
}

#[derive(Debug, Serialize)]
pub struct ConsumedMessage {
    pub message_id: Option<String>,
    pub payload: Map<String, Value>,
    pub redelivered: bool,
}

#[derive(Debug, Serialize)]
pub struct ConsumeResult {
    pub queue: String,
    pub messages: Vec<ConsumedMessage>,
    pub rejected: u32,
}

#[derive(Debug, Serialize)]
pub struct QueueInfo {
    pub queue: String,
    pub message_count: u32,
    pub consumer_count: u32,
}

/// Percent-encode a URI component (userinfo, vhost).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn is_soft(err: &lapin::Error, wanted: AMQPSoftError) -> bool {
    matches!(err, lapin::Error::ProtocolError(e) if *e.kind() == AMQPErrorKind::Soft(wanted))
}

/// A pooled channel, tagged with the connection it belongs to.
struct Lease {
    connection: usize,
    channel: Channel,
}

fn give_back(pool: &ChannelPool, size: usize, lease: Lease) {
    if !lease.channel.status().connected() {
        return;
    }
    let mut pool = pool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if pool.len() < size {
        pool.push((lease.connection, lease.channel));
    }
}

/// Closes its channel when dropped armed (its unacknowledged messages go back to the queue).
struct CloseOnDrop(Option<Channel>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(channel) = self.0.take() {
            tokio::spawn(async move {
                let _ = channel.close(200, "consume not completed").await;
            });
        }
    }
}

/// Why a consumed answer's messages are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The answer carrying them was written: one `basic.ack` (multiple).
    Sent,
    /// The answer could not be built: `basic.nack` (multiple, requeue) at once.
    Release,
}

/// The settlement of messages taken (`basic.get`, no auto-ack) and not yet acknowledged.
/// [`Settle::sent`] acknowledges them, [`Settle::release`] gives them back; dropped without
/// either (the answer was never written), or left unsettled past the operation timeout, their
/// channel is closed and the broker redelivers them (`redelivered: true`).
pub struct Settle {
    outcome: Option<tokio::sync::oneshot::Sender<Outcome>>,
}

impl Settle {
    fn start(
        lease: Lease,
        last_tag: u64,
        within: Duration,
        pool: ChannelPool,
        pool_size: usize,
    ) -> Settle {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let channel = lease.channel.clone();
            let settled = match tokio::time::timeout(within, rx).await {
                Ok(Ok(Outcome::Sent)) => channel
                    .basic_ack(last_tag, BasicAckOptions { multiple: true })
                    .await
                    .map(|()| "acknowledged"),
                Ok(Ok(Outcome::Release)) => channel
                    .basic_nack(
                        last_tag,
                        BasicNackOptions {
                            multiple: true,
                            requeue: true,
                        },
                    )
                    .await
                    .map(|()| "released"),
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!(
                        dependency = %DEP,
                        "consumed messages not sent; closing their channel so they are redelivered"
                    );
                    let _ = channel.close(200, "answer not sent").await;
                    return;
                }
            };
            match settled {
                Ok(what) => {
                    tracing::debug!(dependency = %DEP, what, "consumed messages settled");
                    give_back(&pool, pool_size, lease);
                }
                Err(err) => {
                    // The channel is gone: the broker redelivers the messages.
                    tracing::warn!(dependency = %DEP, error = %err, "settling consumed messages failed; they will be redelivered");
                }
            }
        });
        Settle { outcome: Some(tx) }
    }

    /// The answer carrying the messages was written: acknowledge them.
    pub fn sent(mut self) {
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(Outcome::Sent);
        }
    }

    /// The answer will not be sent: give the messages back to the queue now.
    pub fn release(mut self) {
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(Outcome::Release);
        }
    }
}

/// A consume's answer and the settlement of the messages it carries (none when it carries no
/// message).
pub struct Taken {
    pub result: ConsumeResult,
    pub settle: Option<Settle>,
}

impl Rabbit {
    pub fn new(ctx: Context) -> Self {
        Rabbit {
            ctx,
            managed: Managed::new(DEP),
            channels: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn build(&self, secret: &KvSecret) -> Result<Connection, ApiError> {
        let s = &self.ctx.settings;
        let tls = secret.tls_enabled();
        let (host, port) = s.endpoint("rabbitmq", tls);
        let user = secret
            .text("user")
            .ok_or_else(|| ApiError::unavailable(DEP, "the secret has no user"))?;
        let password = secret
            .secret("password")
            .ok_or_else(|| ApiError::unavailable(DEP, "the secret has no password"))?;
        let vhost = secret.text("vhost").unwrap_or("/");
        let scheme = if tls { "amqps" } else { "amqp" };
        // frame_max: lapin keeps two I/O buffers of 32 frames each, zero-filled, for the life of
        // the connection: 8 MB resident at RabbitMQ's default frame_max (128 KiB), 1 MB at 16 KiB.
        // A message larger than a frame is sent as several frames.
        let uri = format!(
            "{scheme}://{}:{}@{host}:{port}/{}?frame_max={FRAME_MAX}&connection_timeout={}",
            encode(user),
            encode(password.expose()),
            encode(vhost),
            s.connect_timeout.as_millis()
        );
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let config = OwnedTLSConfig {
            identity: None,
            cert_chain: tls.then(|| self.ctx.trust.ca_pem.clone()),
        };
        let connecting = Connection::connect_with_config(&uri, properties, config);
        match tokio::time::timeout(s.connect_timeout, connecting).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(self.translate("connect", &err)),
            Err(_) => Err(ApiError::unavailable(DEP, "connect: timed out")),
        }
    }

    fn translate(&self, what: &str, err: &lapin::Error) -> ApiError {
        let refused = is_soft(err, AMQPSoftError::ACCESSREFUSED)
            || matches!(err, lapin::Error::ProtocolError(e) if e.to_string().contains("ACCESS_REFUSED"));
        if refused {
            self.managed.on_auth_error(&self.ctx.secrets);
            return ApiError::unavailable(DEP, format!("{what}: access refused"));
        }
        if matches!(
            err,
            lapin::Error::IOError(_) | lapin::Error::InvalidConnectionState(_)
        ) {
            self.managed.discard();
        }
        ApiError::unavailable(DEP, format!("{what}: broker error"))
    }

    async fn connection(&self) -> Result<Arc<Connection>, ApiError> {
        let current = self
            .managed
            .client(&self.ctx.secrets, |secret| async move {
                self.build(&secret).await
            })
            .await?;
        if current.status().connected() {
            return Ok(current);
        }
        // The broker went away: a new connection (channels of the old one are dropped).
        self.managed.discard();
        self.managed
            .client(&self.ctx.secrets, |secret| async move {
                self.build(&secret).await
            })
            .await
    }

    async fn lease(&self, what: &str) -> Result<Lease, ApiError> {
        let connection = self.connection().await?;
        let id = Arc::as_ptr(&connection) as usize;
        loop {
            let pooled = self
                .channels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            match pooled {
                Some((owner, channel)) if owner == id && channel.status().connected() => {
                    return Ok(Lease {
                        connection: owner,
                        channel,
                    })
                }
                Some(_) => continue,
                None => break,
            }
        }
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.translate(what, &e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.translate(what, &e))?;
        Ok(Lease {
            connection: id,
            channel,
        })
    }

    fn give_back(&self, lease: Lease) {
        give_back(&self.channels, self.ctx.settings.channel_pool_size, lease);
    }

    async fn with_channel<T, F, Fut>(&self, what: &str, op: F) -> Result<T, ApiError>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let timeout = self.ctx.settings.operation_timeout;
        bounded(DEP, what, timeout, async {
            let lease = self.lease(what).await?;
            let result = op(lease.channel.clone()).await;
            self.give_back(lease);
            result
        })
        .await
    }

    pub async fn health(&self) -> Result<(), ApiError> {
        self.with_channel("health", |channel| async move {
            channel
                .exchange_declare(
                    "amq.direct",
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.translate("health", &e))
        })
        .await
    }

    /// Declare `queue` (durable), publish `payload` persistent, and return once the broker
    /// confirmed it; a message no queue receives is a 404.
    pub async fn publish(&self, queue: &str, payload: &Value) -> Result<PublishResult, ApiError> {
        let message_id = uuid::Uuid::new_v4().to_string();
        let body = serde_json::to_vec(payload)
            .map_err(|_| ApiError::InvalidValue("the payload cannot be encoded".into()))?;
        let id = message_id.clone();
        self.with_channel("publish", |channel| async move {
            channel
                .queue_declare(
                    queue,
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.translate("declare", &e))?;
            let properties = BasicProperties::default()
                .with_message_id(id.into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            let confirm = channel
                .basic_publish(
                    "",
                    queue,
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &body,
                    properties,
                )
                .await
                .map_err(|e| self.translate("publish", &e))?
                .await
                .map_err(|e| self.translate("publish", &e))?;
            match confirm {
                Confirmation::Ack(None) => Ok(()),
                // Every pooled channel is in confirm mode (`lease`): a publish without a confirm
                // is never answered 202, as nothing says the broker has it.
                Confirmation::NotRequested => Err(ApiError::unavailable(
                    DEP,
                    "publish: the channel gave no confirm",
                )),
                Confirmation::Ack(Some(_)) => Err(ApiError::NotFound(format!(
                    "no queue '{queue}' received the message"
                ))),
                Confirmation::Nack(_) => Err(ApiError::unavailable(DEP, "publish: not confirmed")),
            }
        })
        .await?;
        Ok(PublishResult {
            queue: queue.to_owned(),
            message_id,
        })
    }

    async fn passive(&self, channel: &Channel, queue: &str) -> Result<lapin::Queue, ApiError> {
        channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                if is_soft(&e, AMQPSoftError::NOTFOUND) {
                    ApiError::NotFound(format!("queue '{queue}' does not exist"))
                } else {
                    self.translate("declare", &e)
                }
            })
    }

    /// Up to `max` messages waiting now (never waits for more), taken without acknowledging
    /// them: the caller settles them once the answer was written ([`Taken::settle`]). A body no
    /// client can be given as JSON (not UTF-8, not JSON, not an object, past "Values past the
    /// syntax") is rejected without requeue at once and counted.
    pub async fn consume(&self, queue: &str, max: u32) -> Result<Taken, ApiError> {
        let timeout = self.ctx.settings.operation_timeout;
        bounded(DEP, "consume", timeout, async {
            let lease = self.lease("consume").await?;
            let channel = lease.channel.clone();
            // Failed or cut short by the timeout: whatever was taken goes back to the queue with
            // its channel.
            let mut guard = CloseOnDrop(Some(channel.clone()));
            let taken = self.take(&channel, queue, max).await;
            if taken.is_ok() {
                guard.0 = None;
            }
            match taken {
                Ok((result, None)) => {
                    self.give_back(lease);
                    Ok(Taken {
                        result,
                        settle: None,
                    })
                }
                Ok((result, Some(last_tag))) => {
                    let settle = Settle::start(
                        lease,
                        last_tag,
                        timeout,
                        self.channels.clone(),
                        self.ctx.settings.channel_pool_size,
                    );
                    Ok(Taken {
                        result,
                        settle: Some(settle),
                    })
                }
                Err(err) => Err(err),
            }
        })
        .await
    }

    /// The messages and the delivery tag of the last one delivered (to acknowledge at once).
    async fn take(
        &self,
        channel: &Channel,
        queue: &str,
        max: u32,
    ) -> Result<(ConsumeResult, Option<u64>), ApiError> {
        self.passive(channel, queue).await?;
        let mut messages = Vec::new();
        let mut rejected = 0;
        let mut last_tag = None;
        for _ in 0..max {
            let got = channel
                .basic_get(queue, BasicGetOptions { no_ack: false })
                .await
                .map_err(|e| self.translate("consume", &e))?;
            let Some(message) = got else { break };
            let delivery = message.delivery;
            let message_id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string());
            match deliverable(&delivery.data) {
                Some(payload) => {
                    last_tag = Some(delivery.delivery_tag);
                    messages.push(ConsumedMessage {
                        message_id,
                        payload,
                        redelivered: delivery.redelivered,
                    });
                }
                None => {
                    tracing::warn!(
                        dependency = %DEP,
                        queue,
                        message_id = message_id.as_deref().unwrap_or(""),
                        "message rejected: it cannot be given to a client as a JSON object"
                    );
                    channel
                        .basic_reject(delivery.delivery_tag, BasicRejectOptions { requeue: false })
                        .await
                        .map_err(|e| self.translate("reject", &e))?;
                    rejected += 1;
                }
            }
        }
        let result = ConsumeResult {
            queue: queue.to_owned(),
            messages,
            rejected,
        };
        Ok((result, last_tag))
    }

    pub async fn inspect(&self, queue: &str) -> Result<QueueInfo, ApiError> {
        self.with_channel("inspect queue", |channel| async move {
            let declared = self.passive(&channel, queue).await?;
            Ok(QueueInfo {
                queue: queue.to_owned(),
                message_count: declared.message_count(),
                consumer_count: declared.consumer_count(),
            })
        })
        .await
    }
}

/// A message body a client can be given: UTF-8 JSON, an object, within "Values past the
/// syntax" (the rules publish checks).
fn deliverable(body: &[u8]) -> Option<Map<String, Value>> {
    crate::input::check_carriable(body).ok()?;
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(payload)) => Some(payload),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{deliverable, encode};

    #[test]
    fn only_what_a_client_can_be_given_is_delivered() {
        assert!(deliverable(br#"{"n": 1}"#).is_some());
        let deep = format!("{{\"deep\": {}{}}}", "[".repeat(65), "]".repeat(65));
        for body in [
            br#"{"bad": "\ud800"}"#.as_slice(),
            deep.as_bytes(),
            br#"{"huge": 1e400}"#,
            b"not json at all",
            b"[1, 2, 3]",
            b"{\"latin1\": \"\xe9\"}",
        ] {
            assert!(
                deliverable(body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn uri_parts_are_encoded() {
        assert_eq!(encode("/"), "%2F");
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(encode("app_user-1"), "app_user-1");
    }
}
