//! [`RabbitMessage`]: a delivery, its headers (AMQP properties included) and its
//! settlement: `basic.ack`, `basic.nack` and the delay queue of `nack_after`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lapin::Acker;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use ruststream::{AckError, Headers, IncomingMessage};

use crate::broker::RabbitBroker;
use crate::error::RabbitError;

/// The header that counts the delayed retries (`nack_after`) a message went through:
/// a delayed retry is a new copy of the message, so the queue's own count starts again.
pub const RETRIES_HEADER: &str = "x-ruststream-retries";

/// The header a quorum queue counts deliveries in.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// Where a subscription's messages come from: what settling them needs.
pub(crate) struct Origin {
    pub(crate) broker: RabbitBroker,
    pub(crate) queue: String,
    pub(crate) quorum: bool,
}

/// A message delivered from a queue.
///
/// Its headers are the AMQP `headers` table plus the message's properties under these
/// names: `content-type`, `content-encoding`, `correlation-id`, `message-id`, `reply-to`,
/// `timestamp` (seconds since the epoch), `expiration` (milliseconds), `priority`,
/// `type`, `user-id`, `app-id`. Values of the table that are not strings or bytes come
/// as text (`42`, `true`); nested tables and arrays (such as `x-death`) only through
/// [`properties`](Self::properties).
pub struct RabbitMessage {
    payload: Bytes,
    headers: Headers,
    settle: Settle,
    routing_key: ShortString,
    exchange: ShortString,
    redelivered: bool,
    properties: BasicProperties,
    origin: Arc<Origin>,
}

impl RabbitMessage {
    pub(crate) fn new(delivery: Delivery, origin: &Arc<Origin>) -> Self {
        let Delivery {
            exchange,
            routing_key,
            redelivered,
            properties,
            data,
            acker,
            ..
        } = delivery;
        Self {
            payload: Bytes::from(data),
            headers: headers_of(&properties),
            settle: Settle::Live(acker),
            routing_key,
            exchange,
            redelivered,
            properties,
            origin: Arc::clone(origin),
        }
    }

    /// A message the in-process test client routed.
    #[cfg(feature = "testing")]
    pub(crate) fn local(message: ruststream::testing::TestMessage, origin: &Arc<Origin>) -> Self {
        let mut headers = message.headers().clone();
        let exchange = headers
            .get_str(crate::testing::EXCHANGE_HEADER)
            .unwrap_or("")
            .to_owned();
        let routing_key = headers
            .get_str(crate::testing::ROUTING_KEY_HEADER)
            .or(message.name())
            .unwrap_or("")
            .to_owned();
        headers.remove(crate::testing::EXCHANGE_HEADER);
        headers.remove(crate::testing::ROUTING_KEY_HEADER);
        let mut properties = BasicProperties::default();
        if let Some(reply_to) = message
            .reply_to()
            .and_then(|r| ShortString::try_new(r).ok())
        {
            properties = properties.with_reply_to(reply_to);
        }
        Self {
            payload: Bytes::copy_from_slice(message.payload()),
            headers,
            settle: Settle::Local(message),
            routing_key: ShortString::try_new(routing_key).unwrap_or_default(),
            exchange: ShortString::try_new(exchange).unwrap_or_default(),
            redelivered: false,
            properties,
            origin: Arc::clone(origin),
        }
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &str {
        self.routing_key.as_str()
    }

    /// The exchange it was published to (`""`: the default exchange).
    pub fn exchange(&self) -> &str {
        self.exchange.as_str()
    }

    /// The queue it was consumed from.
    pub fn queue(&self) -> &str {
        &self.origin.queue
    }

    /// Whether the server delivered it before (the AMQP `redelivered` flag).
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The AMQP properties as delivered, headers table included.
    pub fn properties(&self) -> &BasicProperties {
        &self.properties
    }

    /// The body as shared bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.payload
    }

    fn retries(&self) -> u32 {
        header_number(&self.properties, RETRIES_HEADER).unwrap_or(0)
    }
}

impl std::fmt::Debug for RabbitMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMessage")
            .field("queue", &self.origin.queue)
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("redelivered", &self.redelivered)
            .field("payload_len", &self.payload.len())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// How a message is settled: on its channel, or (in process) by the test client.
pub(crate) enum Settle {
    Live(Acker),
    #[cfg(feature = "testing")]
    Local(ruststream::testing::TestMessage),
}

fn settled(result: lapin::Result<bool>) -> Result<(), AckError> {
    match result {
        Ok(true) => Ok(()),
        // The acker was poisoned: its channel closed, the server requeued the message.
        Ok(false) => Err(AckError::Closed),
        Err(error) if error.is_io_error() || error.is_amqp_hard_error() => Err(AckError::Closed),
        Err(error) => Err(AckError::Transport(Box::new(error))),
    }
}

impl IncomingMessage for RabbitMessage {
    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn headers(&self) -> &Headers {
        &self.headers
    }

    async fn ack(self) -> Result<(), AckError> {
        match self.settle {
            // After `shutdown` the connection is closed and the server requeues the
            // message; the client would never answer a settlement sent now.
            Settle::Live(_) if self.origin.broker.inner.shutdown.is_triggered() => {
                Err(AckError::Closed)
            }
            Settle::Live(acker) => settled(acker.ack(BasicAckOptions::default()).await),
            #[cfg(feature = "testing")]
            Settle::Local(message) => message.ack().await,
        }
    }

    /// `basic.nack`: `requeue = true` puts it back in the queue (at its head, where the
    /// server can), `false` drops it, or dead-letters it if the queue has a dead-letter
    /// exchange.
    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        let options = BasicNackOptions {
            multiple: false,
            requeue,
        };
        match self.settle {
            Settle::Live(_) if self.origin.broker.inner.shutdown.is_triggered() => {
                Err(AckError::Closed)
            }
            Settle::Live(acker) => settled(acker.nack(options).await),
            #[cfg(feature = "testing")]
            Settle::Local(message) => message.nack(requeue).await,
        }
    }

    /// Publishes a copy to the delay queue of `delay` (a durable queue whose message
    /// TTL is `delay` and whose dead-letter route is this message's queue), waits for
    /// the server's confirm, then acks this delivery. The copy comes back after `delay`,
    /// even if the service and the server both restart meanwhile; no worker waits. If
    /// the copy cannot be parked, the message is requeued at once and the error
    /// returned.
    async fn nack_after(self, delay: Duration) -> Result<(), AckError> {
        if delay.is_zero() {
            return self.nack(true).await;
        }
        #[cfg(feature = "testing")]
        if let Settle::Local(message) = self.settle {
            return message.nack_after(delay).await;
        }
        let mut properties = self.properties.clone();
        let mut table = properties.headers().clone().unwrap_or_default();
        let mut entries = table.inner().clone();
        entries.remove(DELIVERY_COUNT);
        let retries = self.retries().saturating_add(self.delivery_count());
        entries.insert(
            RETRIES_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(retries.saturating_add(1))),
        );
        table = FieldTable::from(entries);
        properties = properties.with_headers(table);
        let parked = self
            .origin
            .broker
            .park(&self.origin.queue, delay, &self.payload, properties)
            .await;
        match parked {
            Ok(()) => self.ack().await,
            Err(error) => {
                let error = AckError::Rejected(format!(
                    "the delayed retry could not be parked, so the message was requeued at once: {error}"
                ));
                self.nack(true).await?;
                Err(error)
            }
        }
    }

    fn name(&self) -> Option<&str> {
        Some(self.routing_key.as_str())
    }

    fn reply_to(&self) -> Option<&str> {
        self.properties.reply_to().as_ref().map(ShortString::as_str)
    }

    /// On a quorum queue, `x-delivery-count` (absent on the first delivery) plus the
    /// delayed retries the message went through. `None` on a classic queue, which only
    /// says *whether* a message was delivered before ([`redelivered`](Self::redelivered)).
    fn redelivery_count(&self) -> Option<u32> {
        self.origin
            .quorum
            .then(|| self.retries().saturating_add(self.delivery_count()))
    }
}

impl RabbitMessage {
    fn delivery_count(&self) -> u32 {
        header_number(&self.properties, DELIVERY_COUNT).unwrap_or(0)
    }
}

/// A numeric header of the table, if present and a non-negative integer.
fn header_number(properties: &BasicProperties, name: &str) -> Option<u32> {
    let value = properties.headers().as_ref()?.inner().get(name)?;
    let number = match value {
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok()?,
        _ => return None,
    };
    u32::try_from(number).ok()
}

/// The headers of a delivery: its properties under their header names, then the table.
pub(crate) fn headers_of(properties: &BasicProperties) -> Headers {
    let table = properties.headers().as_ref();
    let texts = [
        properties.content_type(),
        properties.content_encoding(),
        properties.correlation_id(),
        properties.message_id(),
        properties.reply_to(),
        properties.expiration(),
        properties.kind(),
        properties.user_id(),
        properties.app_id(),
    ];
    let count = texts.iter().filter(|value| value.is_some()).count()
        + usize::from(properties.timestamp().is_some())
        + usize::from(properties.priority().is_some())
        + table.map_or(0, |t| t.inner().len());
    // No allocation for a message without properties or headers.
    let mut headers = if count == 0 {
        Headers::new()
    } else {
        Headers::with_capacity(count)
    };
    let text = |headers: &mut Headers, name: &'static str, value: &Option<ShortString>| {
        if let Some(value) = value {
            headers.append(name, Bytes::copy_from_slice(value.as_str().as_bytes()));
        }
    };
    text(&mut headers, "content-type", properties.content_type());
    text(
        &mut headers,
        "content-encoding",
        properties.content_encoding(),
    );
    text(&mut headers, "correlation-id", properties.correlation_id());
    text(&mut headers, "message-id", properties.message_id());
    text(&mut headers, "reply-to", properties.reply_to());
    if let Some(timestamp) = properties.timestamp() {
        headers.append("timestamp", timestamp.to_string());
    }
    text(&mut headers, "expiration", properties.expiration());
    if let Some(priority) = properties.priority() {
        headers.append("priority", priority.to_string());
    }
    text(&mut headers, "type", properties.kind());
    text(&mut headers, "user-id", properties.user_id());
    text(&mut headers, "app-id", properties.app_id());
    if let Some(table) = table {
        for (name, value) in table.inner() {
            if let Some(value) = value_bytes(value) {
                headers.append(name.as_str().to_owned(), value);
            }
        }
    }
    headers
}

/// A table value as header bytes: strings and byte arrays as they are, scalars as text;
/// `None` for nested tables and arrays.
fn value_bytes(value: &AMQPValue) -> Option<Bytes> {
    let text = match value {
        AMQPValue::LongString(s) => return Some(Bytes::copy_from_slice(s.as_bytes())),
        AMQPValue::ShortString(s) => return Some(Bytes::copy_from_slice(s.as_str().as_bytes())),
        AMQPValue::ByteArray(b) => return Some(Bytes::copy_from_slice(b.as_slice())),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::DecimalValue(d) => format!("{}e-{}", d.value, d.scale),
        AMQPValue::Void => String::new(),
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => return None,
    };
    Some(Bytes::from(text))
}

/// `millis` rounded up to two significant digits (117 -> 120, 1234 -> 1300): delays
/// with jitter share a few delay queues instead of making one each, and a retry never
/// comes earlier than asked, at most a tenth later.
fn delay_bucket(millis: i64) -> i64 {
    let mut step = 1i64;
    while millis / step >= 100 {
        step = step.saturating_mul(10);
    }
    let buckets = millis / step + i64::from(millis % step != 0);
    buckets.saturating_mul(step)
}

impl RabbitBroker {
    /// Publishes `payload` to the delay queue of `delay` for `queue`, confirmed.
    pub(crate) async fn park(
        &self,
        queue: &str,
        delay: Duration,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), RabbitError> {
        let millis = delay_bucket(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX).max(1));
        let delay_queue =
            crate::source::RabbitQueue::new(format!("ruststream.delay.{millis}ms.{queue}"))
                .argument("x-message-ttl", millis)
                .argument("x-dead-letter-exchange", "")
                .argument("x-dead-letter-routing-key", queue)
                // Idle delay queues go away; a declaration counts as use, and every park
                // declares, so a queue never expires while a copy waits in it.
                .argument("x-expires", millis.saturating_add(60_000));
        let channel = self.publish_channel().await?;
        let name = delay_queue.declare(&channel).await?;
        self.send_on(&channel, "", &name, payload, properties, true)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::delay_bucket;

    #[test]
    fn delays_round_up_to_two_significant_digits() {
        assert_eq!(delay_bucket(1), 1);
        assert_eq!(delay_bucket(99), 99);
        assert_eq!(delay_bucket(100), 100);
        assert_eq!(delay_bucket(117), 120);
        assert_eq!(delay_bucket(1000), 1000);
        assert_eq!(delay_bucket(1234), 1300);
        assert_eq!(delay_bucket(86_400_001), 87_000_000);
        assert!(delay_bucket(i64::MAX) >= i64::MAX / 10);
    }
}
