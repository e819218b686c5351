//! Publishing: the header mapping onto AMQP properties, confirmed mandatory publishes,
//! [`RabbitPublisher`] (to an exchange), AMQP transactions and direct reply-to requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use ruststream::{
    OutgoingMessage, Publisher, Reply, RequestReply, Transaction, TransactionalPublisher,
};

use crate::broker::RabbitBroker;
use crate::error::{RabbitError, shown};
use crate::message::headers_of;
use crate::source::{RabbitExchange, short};

/// The pseudo-queue of RabbitMQ's direct reply-to.
pub(crate) const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// AMQP `delivery_mode` 2: written to disk by durable queues.
const PERSISTENT: u8 = 2;

fn header_text<'v>(name: &str, value: &'v [u8]) -> Result<&'v str, RabbitError> {
    std::str::from_utf8(value).map_err(|_| RabbitError::Header {
        name: shown(name),
        reason: "it becomes an AMQP property, whose value must be UTF-8 text".to_owned(),
    })
}

fn header_short(name: &str, value: &[u8]) -> Result<ShortString, RabbitError> {
    ShortString::try_new(header_text(name, value)?).map_err(|_| RabbitError::Header {
        name: shown(name),
        reason: "it becomes an AMQP property, whose value is at most 255 bytes".to_owned(),
    })
}

fn header_number<T: std::str::FromStr>(
    name: &str,
    value: &[u8],
    what: &str,
) -> Result<T, RabbitError> {
    header_text(name, value)?
        .trim()
        .parse()
        .map_err(|_| RabbitError::Header {
            name: shown(name),
            reason: format!("it becomes an AMQP property and must be {what}"),
        })
}

/// The AMQP properties of `msg`: persistent, its reply-to, the property headers
/// (`content-type`, `correlation-id`...) as properties and the others in the table.
pub(crate) fn properties_of(msg: &OutgoingMessage<'_>) -> Result<BasicProperties, RabbitError> {
    let mut properties = BasicProperties::default().with_delivery_mode(PERSISTENT);
    if let Some(reply_to) = msg.reply_to() {
        properties = properties.with_reply_to(short(reply_to)?);
    }
    let headers = msg.headers();
    if headers.is_empty() {
        return Ok(properties);
    }
    let mut table = FieldTable::default();
    let mut seen: Vec<&str> = Vec::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        if seen.contains(&name) {
            return Err(RabbitError::Header {
                name: shown(name),
                reason: "it has several values and an AMQP message has one per name; join them into one value".to_owned(),
            });
        }
        seen.push(name);
        properties = match name {
            "content-type" => properties.with_content_type(header_short(name, value)?),
            "content-encoding" => properties.with_content_encoding(header_short(name, value)?),
            "correlation-id" => properties.with_correlation_id(header_short(name, value)?),
            "message-id" => properties.with_message_id(header_short(name, value)?),
            "reply-to" if msg.reply_to().is_none() => {
                properties.with_reply_to(header_short(name, value)?)
            }
            "reply-to" => properties,
            "timestamp" => properties.with_timestamp(header_number(
                name,
                value,
                "whole seconds since the epoch",
            )?),
            "expiration" => {
                let millis: u64 = header_number(name, value, "whole milliseconds")?;
                properties.with_expiration(millis.to_string().into())
            }
            "priority" => properties.with_priority(header_number(name, value, "0 to 255")?),
            "type" => properties.with_type(header_short(name, value)?),
            "user-id" => properties.with_user_id(header_short(name, value)?),
            "app-id" => properties.with_app_id(header_short(name, value)?),
            "delivery-mode" => properties.with_delivery_mode(header_number(name, value, "1 or 2")?),
            _ => {
                let key = ShortString::try_new(name).map_err(|_| RabbitError::Header {
                    name: shown(name),
                    reason: "AMQP header names are at most 255 bytes".to_owned(),
                })?;
                table.insert(key, AMQPValue::LongString(LongString::from(value)));
                properties
            }
        };
    }
    if !table.inner().is_empty() {
        properties = properties.with_headers(table);
    }
    Ok(properties)
}

/// Why one attempt to publish failed.
enum Failure {
    /// The connection is down: worth another attempt once it is back.
    Down(RabbitError),
    /// The message itself or the channel's state was refused.
    Final(RabbitError),
}

impl RabbitBroker {
    /// Publishes `msg` to `exchange`, confirmed; waits for the connection if configured.
    pub(crate) async fn send(
        &self,
        exchange: &str,
        msg: OutgoingMessage<'_>,
        declare: Option<&PublisherState>,
        mandatory: bool,
    ) -> Result<(), RabbitError> {
        if self.inner.shutdown.is_triggered() {
            return Err(RabbitError::Closed);
        }
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            if let Some(state) = declare {
                local.declare_exchange(&state.exchange)?;
            }
            return local.publish(exchange, msg, mandatory).await;
        }
        let properties = properties_of(&msg)?;
        let routing_key = msg.name();
        // The server routes a direct reply-to address only without `mandatory` (it
        // returns such a message as unroutable otherwise).
        let mandatory = mandatory && !routing_key.starts_with(DIRECT_REPLY_TO);
        let mut attempt = 0u32;
        let deadline = self.inner.config.publish_wait_limit().map(|wait| {
            let now = tokio::time::Instant::now();
            // A wait too long to add is as good as forever: about 30 years.
            now.checked_add(wait)
                .unwrap_or_else(|| now + Duration::from_secs(1 << 30))
        });
        loop {
            let failure = match self.publish_channel().await {
                Ok(channel) => {
                    if let Some(state) = declare
                        && let Err(error) = state.ensure(self, &channel).await
                    {
                        if self.connection_lost() {
                            Failure::Down(self.down(error))
                        } else {
                            Failure::Final(error)
                        }
                    } else {
                        match self
                            .send_on(
                                &channel,
                                exchange,
                                routing_key,
                                msg.payload(),
                                properties.clone(),
                                mandatory,
                            )
                            .await
                        {
                            Ok(()) => return Ok(()),
                            // A queue without a leader yet (a quorum queue just after a
                            // restart) refuses messages for a moment: like an outage.
                            Err(
                                error @ (RabbitError::Disconnected { .. }
                                | RabbitError::Nacked { .. }),
                            ) => Failure::Down(error),
                            Err(error) => Failure::Final(error),
                        }
                    }
                }
                Err(error @ (RabbitError::Disconnected { .. } | RabbitError::Connect { .. })) => {
                    Failure::Down(error)
                }
                Err(error) => Failure::Final(error),
            };
            let error = match failure {
                Failure::Final(error) => return Err(error),
                Failure::Down(error) => error,
            };
            let now = tokio::time::Instant::now();
            let Some(deadline) = deadline.filter(|deadline| *deadline > now) else {
                return Err(match error {
                    RabbitError::Connect { reason, .. } => RabbitError::Disconnected { reason },
                    other => other,
                });
            };
            attempt = attempt.saturating_add(1);
            let pause = self
                .inner
                .config
                .backoff()
                .delay(attempt)
                .min(deadline - now);
            tokio::select! {
                () = self.inner.shutdown.triggered() => return Err(RabbitError::Closed),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One confirmed publish on `channel`.
    pub(crate) async fn send_on(
        &self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), RabbitError> {
        let options = BasicPublishOptions {
            mandatory,
            immediate: false,
        };
        let failed = |error: lapin::Error| {
            if self.connection_lost() {
                self.down(error)
            } else {
                RabbitError::Publish(self.redact(error))
            }
        };
        let confirm = channel
            .basic_publish(
                short(exchange)?,
                short(routing_key)?,
                options,
                payload,
                properties,
            )
            .await
            .map_err(failed)?;
        match confirm.await.map_err(failed)? {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(RabbitError::Unroutable {
                exchange: shown(exchange),
                routing_key: shown(routing_key),
                reply: returned.reply_text.to_string(),
            }),
            Confirmation::Nack(_) => Err(RabbitError::Nacked {
                exchange: shown(exchange),
                routing_key: shown(routing_key),
            }),
        }
    }

    /// A publisher to `exchange`: each message's name is its routing key. The exchange
    /// is declared before the first publish and again after every reconnection.
    pub fn publisher(&self, exchange: RabbitExchange) -> RabbitPublisher {
        RabbitPublisher {
            broker: self.clone(),
            state: Arc::new(PublisherState {
                exchange,
                declared: AtomicU64::new(u64::MAX),
                mandatory: true,
            }),
        }
    }

    async fn request_on(
        &self,
        exchange: &str,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
        declare: Option<&PublisherState>,
    ) -> Result<Reply, RabbitError> {
        let name = msg.name();
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            if let Some(state) = declare {
                local.declare_exchange(&state.exchange)?;
            }
            return local.request(exchange, msg, timeout).await;
        }
        let channel = self.channel().await?;
        if let Some(state) = declare {
            state.ensure(self, &channel).await?;
        }
        let failed = |error: lapin::Error| RabbitError::Publish(self.redact(error));
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(failed)?;
        let mut replies = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                ShortString::default(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(failed)?;
        let mut properties = properties_of(&msg)?.with_reply_to(DIRECT_REPLY_TO.into());
        let correlation = match properties.correlation_id() {
            Some(id) => id.clone(),
            None => {
                let id = ShortString::from(format!("{:032x}", fastrand::u128(..)));
                properties = properties.with_correlation_id(id.clone());
                id
            }
        };
        // The reply channel closes when `channel` drops, on every path below.
        self.send_on(&channel, exchange, name, msg.payload(), properties, true)
            .await?;
        let wait = async {
            while let Some(delivery) = replies.next().await {
                let Ok(delivery) = delivery else { break };
                let answers = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .is_none_or(|id| *id == correlation);
                if answers {
                    return Some(Reply {
                        headers: headers_of(&delivery.properties),
                        payload: Bytes::from(delivery.data),
                    });
                }
            }
            None
        };
        let reply = tokio::select! {
            () = self.inner.shutdown.triggered() => return Err(RabbitError::Closed),
            reply = tokio::time::timeout(timeout, wait) => reply,
        };
        let _ = channel.close(200, "OK".into()).await;
        match reply {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(self.down("the reply channel closed")),
            Err(_) => Err(RabbitError::RequestTimeout {
                name: shown(name),
                timeout,
            }),
        }
    }

    async fn begin_on(
        &self,
        exchange: Option<Arc<PublisherState>>,
    ) -> Result<RabbitTransaction, RabbitError> {
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            if let Some(state) = &exchange {
                local.declare_exchange(&state.exchange)?;
            }
            return Ok(RabbitTransaction {
                broker: self.clone(),
                tx: Tx::Local(Vec::new()),
                exchange,
            });
        }
        let channel = self.channel().await?;
        if let Some(state) = &exchange {
            state.ensure(self, &channel).await?;
        }
        channel
            .tx_select()
            .await
            .map_err(|error| RabbitError::Transaction(self.redact(error)))?;
        Ok(RabbitTransaction {
            broker: self.clone(),
            tx: Tx::Live(channel),
            exchange,
        })
    }
}

/// The exchange of a [`RabbitPublisher`] and the connection it was last declared on.
pub(crate) struct PublisherState {
    exchange: RabbitExchange,
    declared: AtomicU64,
    mandatory: bool,
}

impl PublisherState {
    /// Declares the exchange on `channel` unless done on this connection already.
    async fn ensure(&self, broker: &RabbitBroker, channel: &Channel) -> Result<(), RabbitError> {
        let generation = broker.generation();
        if self.declared.load(Ordering::Acquire) == generation {
            return Ok(());
        }
        self.exchange.declare(channel).await?;
        self.declared.store(generation, Ordering::Release);
        Ok(())
    }
}

/// Publishes to one exchange; each message's name is its routing key. Made by
/// [`RabbitBroker::publisher`]; cheap to clone.
///
/// Every publish is mandatory and confirmed: it returns once the server has routed the
/// message to at least one queue (and written it, for a durable queue), and an
/// unroutable message is [`RabbitError::Unroutable`], never a silent drop.
#[derive(Clone)]
pub struct RabbitPublisher {
    broker: RabbitBroker,
    state: Arc<PublisherState>,
}

impl RabbitPublisher {
    /// Whether a message no queue is bound for is an error (`true`, the default:
    /// published `mandatory`, returned by the server, reported as
    /// [`RabbitError::Unroutable`]) or dropped by the server (`false`, for events
    /// nobody may be listening to yet).
    #[must_use]
    pub fn mandatory(self, mandatory: bool) -> Self {
        Self {
            broker: self.broker,
            state: Arc::new(PublisherState {
                exchange: self.state.exchange.clone(),
                declared: AtomicU64::new(u64::MAX),
                mandatory,
            }),
        }
    }

    /// The exchange it publishes to.
    pub fn exchange(&self) -> &RabbitExchange {
        &self.state.exchange
    }

    /// The broker it publishes through.
    pub fn broker(&self) -> &RabbitBroker {
        &self.broker
    }
}

impl std::fmt::Debug for RabbitPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitPublisher")
            .field("exchange", &self.state.exchange.name())
            .finish_non_exhaustive()
    }
}

impl Publisher for RabbitPublisher {
    type Error = RabbitError;

    /// A reply to a direct reply-to address (`amq.rabbitmq.reply-to...`) goes through
    /// the default exchange, the only one that routes it.
    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), RabbitError> {
        if msg.name().starts_with(DIRECT_REPLY_TO) {
            return self.broker.send("", msg, None, false).await;
        }
        self.broker
            .send(
                self.state.exchange.name(),
                msg,
                Some(&self.state),
                self.state.mandatory,
            )
            .await
    }
}

/// Publishes to the default exchange: a message's name is the queue it goes to.
impl Publisher for RabbitBroker {
    type Error = RabbitError;

    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), RabbitError> {
        self.send("", msg, None, true).await
    }
}

/// Requests through direct reply-to (`amq.rabbitmq.reply-to`): the request carries a
/// correlation id (its own `correlation-id` header, or a generated one), and the first
/// reply with that id (or none) answers it. A request nobody is bound to receive fails
/// at once as unroutable.
impl RequestReply for RabbitBroker {
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, RabbitError> {
        self.request_on("", msg, timeout, None).await
    }
}

impl RequestReply for RabbitPublisher {
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, RabbitError> {
        self.broker
            .request_on(self.state.exchange.name(), msg, timeout, Some(&self.state))
            .await
    }
}

/// AMQP transactions (`tx.select`, `tx.commit`, `tx.rollback`) on a channel of their
/// own.
impl TransactionalPublisher for RabbitBroker {
    type Transaction = RabbitTransaction;

    async fn begin(&self) -> Result<RabbitTransaction, RabbitError> {
        self.begin_on(None).await
    }
}

impl TransactionalPublisher for RabbitPublisher {
    type Transaction = RabbitTransaction;

    async fn begin(&self) -> Result<RabbitTransaction, RabbitError> {
        self.broker.begin_on(Some(Arc::clone(&self.state))).await
    }
}

/// An open AMQP transaction: its publishes are routed together on `commit`, or never.
/// Dropping it unfinished closes its channel, which rolls it back.
///
/// Publishes inside a transaction are not mandatory: AMQP reports an unroutable message
/// of a transaction only after the commit, so a message no queue is bound for is
/// dropped.
pub struct RabbitTransaction {
    broker: RabbitBroker,
    tx: Tx,
    exchange: Option<Arc<PublisherState>>,
}

/// Where a transaction's publishes wait for the commit.
enum Tx {
    /// A channel in `tx` mode.
    Live(Channel),
    /// In process: the messages themselves (name, payload, headers).
    #[cfg(feature = "testing")]
    Local(Vec<(String, Vec<u8>, ruststream::Headers)>),
}

impl std::fmt::Debug for RabbitTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitTransaction").finish_non_exhaustive()
    }
}

impl RabbitTransaction {
    fn failed(&self, error: impl std::fmt::Display) -> RabbitError {
        RabbitError::Transaction(self.broker.redact(error))
    }
}

impl RabbitTransaction {
    fn exchange_name(&self) -> &str {
        self.exchange
            .as_ref()
            .map_or("", |state| state.exchange.name())
    }
}

impl Transaction for RabbitTransaction {
    type Error = RabbitError;

    async fn publish(&mut self, msg: OutgoingMessage<'_>) -> Result<(), RabbitError> {
        let properties = properties_of(&msg)?;
        let exchange = short(self.exchange_name())?;
        let routing_key = short(msg.name())?;
        match &mut self.tx {
            Tx::Live(channel) => {
                channel
                    .basic_publish(
                        exchange,
                        routing_key,
                        BasicPublishOptions::default(),
                        msg.payload(),
                        properties,
                    )
                    .await
                    .map_err(|error| RabbitError::Transaction(self.broker.redact(error)))?;
            }
            #[cfg(feature = "testing")]
            Tx::Local(messages) => messages.push((
                msg.name().to_owned(),
                msg.payload().to_vec(),
                msg.headers().clone(),
            )),
        }
        Ok(())
    }

    async fn commit(self) -> Result<(), RabbitError> {
        match &self.tx {
            Tx::Live(channel) => {
                channel
                    .tx_commit()
                    .await
                    .map_err(|error| self.failed(error))?;
                let _ = channel.close(200, "OK".into()).await;
            }
            #[cfg(feature = "testing")]
            Tx::Local(messages) => {
                let exchange = self.exchange_name();
                for (name, payload, headers) in messages {
                    let msg = OutgoingMessage::new(name, payload).with_headers(headers);
                    self.broker.send(exchange, msg, None, false).await?;
                }
            }
        }
        Ok(())
    }

    async fn abort(self) -> Result<(), RabbitError> {
        match &self.tx {
            Tx::Live(channel) => {
                let rolled_back = channel.tx_rollback().await;
                let _ = channel.close(200, "OK".into()).await;
                rolled_back.map_err(|error| self.failed(error))
            }
            #[cfg(feature = "testing")]
            Tx::Local(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use ruststream::Headers;

    use super::*;

    #[test]
    fn property_headers_become_properties_and_others_the_table() {
        let headers: Headers = [
            ("content-type", "application/json"),
            ("correlation-id", "c-1"),
            ("message-id", "m-1"),
            ("timestamp", "1700000000"),
            ("expiration", "5000"),
            ("priority", "3"),
            ("type", "order.created"),
            ("x-tenant", "acme"),
        ]
        .into_iter()
        .collect();
        let msg = OutgoingMessage::new("orders", b"{}")
            .with_headers(&headers)
            .with_reply_to("replies");
        let properties = properties_of(&msg).unwrap();
        assert_eq!(
            properties.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(
            properties.correlation_id().as_ref().unwrap().as_str(),
            "c-1"
        );
        assert_eq!(properties.message_id().as_ref().unwrap().as_str(), "m-1");
        assert_eq!(*properties.timestamp(), Some(1_700_000_000));
        assert_eq!(properties.expiration().as_ref().unwrap().as_str(), "5000");
        assert_eq!(*properties.priority(), Some(3));
        assert_eq!(
            properties.kind().as_ref().unwrap().as_str(),
            "order.created"
        );
        assert_eq!(properties.reply_to().as_ref().unwrap().as_str(), "replies");
        assert_eq!(*properties.delivery_mode(), Some(PERSISTENT));
        let table = properties.headers().as_ref().unwrap();
        assert_eq!(table.inner().len(), 1);
        let back = headers_of(&properties);
        for (name, value) in headers.iter() {
            assert_eq!(back.get(name), Some(value), "{name}");
        }
        assert_eq!(back.get_str("reply-to"), Some("replies"));
    }

    #[tokio::test]
    async fn extreme_durations_are_errors_not_panics() {
        let broker = RabbitBroker::new(
            crate::Config::new("amqp://127.0.0.1:1/%2f")
                .publish_wait(Duration::MAX)
                .connection_timeout(Duration::MAX),
        );
        let error = broker
            .publish(OutgoingMessage::new("q", b"x"))
            .await
            .unwrap_err();
        assert!(matches!(error, RabbitError::NotConnected), "{error}");
        let error = ruststream::Broker::connect(&broker).await.unwrap_err();
        assert!(matches!(error, RabbitError::Connect { .. }), "{error}");
    }

    #[test]
    fn binary_values_survive_in_the_table() {
        let headers: Headers = [("x-bin", Bytes::from_static(b"\0\r\n\xff"))]
            .into_iter()
            .collect();
        let msg = OutgoingMessage::new("q", b"").with_headers(&headers);
        let back = headers_of(&properties_of(&msg).unwrap());
        assert_eq!(back.get("x-bin"), Some(&b"\0\r\n\xff"[..]));
    }

    #[test]
    fn headers_amqp_cannot_carry_are_refused_by_name() {
        let cases: [(&str, &[u8], &str); 4] = [
            ("priority", b"high", "0 to 255"),
            ("timestamp", b"yesterday", "seconds"),
            ("content-type", b"\xff", "UTF-8"),
            ("expiration", b"-1", "milliseconds"),
        ];
        for (name, value, says) in cases {
            let mut headers = Headers::new();
            headers.insert(name, Bytes::copy_from_slice(value));
            let msg = OutgoingMessage::new("q", b"").with_headers(&headers);
            let error = properties_of(&msg).unwrap_err().to_string();
            assert!(error.contains(name) && error.contains(says), "{error}");
        }
        let mut headers = Headers::new();
        headers.append("x-twice", "a");
        headers.append("x-twice", "b");
        let msg = OutgoingMessage::new("q", b"").with_headers(&headers);
        let error = properties_of(&msg).unwrap_err().to_string();
        assert!(
            error.contains("x-twice") && error.contains("one per name"),
            "{error}"
        );
        let long = "k".repeat(300);
        let mut headers = Headers::new();
        headers.insert(long.clone(), "v");
        let msg = OutgoingMessage::new("q", b"").with_headers(&headers);
        assert!(properties_of(&msg).is_err());
        let msg = OutgoingMessage::new(&long, b"");
        assert!(
            properties_of(&msg).is_ok(),
            "the name is checked at publish"
        );
    }
}
