//! RabbitMQ through lapin on the AMQPS port, verified against the stack's CA: durable queues,
//! persistent messages published with `mandatory` and publisher confirms, a small channel pool.

use std::sync::{Arc, Mutex};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, BasicRejectOptions,
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

pub struct Rabbit {
    ctx: Context,
    managed: Managed<Connection>,
    channels: Mutex<Vec<(usize, Channel)>>,
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

impl Rabbit {
    pub fn new(ctx: Context) -> Self {
        Rabbit {
            ctx,
            managed: Managed::new(DEP),
            channels: Mutex::new(Vec::new()),
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
        let uri = format!(
            "{scheme}://{}:{}@{host}:{port}/{}?connection_timeout={}",
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
        if !lease.channel.status().connected() {
            return;
        }
        let mut pool = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < self.ctx.settings.channel_pool_size {
            pool.push((lease.connection, lease.channel));
        }
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
                Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
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

    /// Up to `max` messages waiting now (never waits for more), each acknowledged; a body that
    /// is not a JSON object is rejected without requeue and counted.
    pub async fn consume(&self, queue: &str, max: u32) -> Result<ConsumeResult, ApiError> {
        self.with_channel("consume", |channel| async move {
            self.passive(&channel, queue).await?;
            let mut messages = Vec::new();
            let mut rejected = 0;
            for _ in 0..max {
                let got = channel
                    .basic_get(queue, BasicGetOptions { no_ack: false })
                    .await
                    .map_err(|e| self.translate("consume", &e))?;
                let Some(message) = got else { break };
                let delivery = message.delivery;
                match serde_json::from_slice::<Value>(&delivery.data) {
                    Ok(Value::Object(payload)) => {
                        delivery
                            .acker
                            .ack(BasicAckOptions::default())
                            .await
                            .map_err(|e| self.translate("ack", &e))?;
                        messages.push(ConsumedMessage {
                            message_id: delivery
                                .properties
                                .message_id()
                                .as_ref()
                                .map(|s| s.to_string()),
                            payload,
                            redelivered: delivery.redelivered,
                        });
                    }
                    _ => {
                        delivery
                            .acker
                            .reject(BasicRejectOptions { requeue: false })
                            .await
                            .map_err(|e| self.translate("reject", &e))?;
                        rejected += 1;
                    }
                }
            }
            Ok(ConsumeResult {
                queue: queue.to_owned(),
                messages,
                rejected,
            })
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn uri_parts_are_encoded() {
        assert_eq!(encode("/"), "%2F");
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(encode("app_user-1"), "app_user-1");
    }
}
