//! [`KafkaMessage`]: a received record, its settlement and its key.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use rdkafka::message::{BorrowedMessage, Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use ruststream::contract::{AckError, Headers, IncomingMessage};
use ruststream::kit::Redactor;

use crate::broker::Producer_;
use crate::tracker::Tracker;

/// The header carrying how many times a message was delivered again (decimal text).
pub const REDELIVERIES_HEADER: &str = "ruststream-redeliveries";
/// The header of a retry copy carrying when it is due (Unix time in milliseconds).
pub const DUE_HEADER: &str = "ruststream-due-ms";
/// The header of a retry copy carrying the topic the message was first read from.
pub const ORIGIN_HEADER: &str = "ruststream-topic";

/// What the messages of one subscription share: the commit tracker and the way to
/// the retry topic.
pub(crate) struct Subscription {
    pub(crate) tracker: Mutex<Tracker>,
    /// How many revocations the subscription went through: a message received after
    /// the last one is current without a look at the tracker.
    pub(crate) revocations: std::sync::atomic::AtomicU64,
    pub(crate) producer: Producer_,
    pub(crate) retry_topic: String,
    pub(crate) delivery_timeout: Duration,
    pub(crate) redactor: Arc<Redactor>,
    /// The subscription's consumer, for the group metadata a transaction commits
    /// consumed offsets with.
    pub(crate) consumer: std::sync::OnceLock<std::sync::Weak<crate::subscriber::Consumer_>>,
}

/// A message received from Kafka.
///
/// Settling it marks its offset settled; the subscription commits each partition's
/// offset up to the first unsettled message. `nack(true)` and `nack_after(d)` publish
/// a copy to the subscription's retry topic (with [`REDELIVERIES_HEADER`] one higher
/// and, for `nack_after`, [`DUE_HEADER`]), awaited, and then settle the original:
/// later messages of the partition are never held back or lost.
pub struct KafkaMessage {
    topic: Arc<str>,
    origin: Option<String>,
    partition: i32,
    offset: i64,
    key: Option<Bytes>,
    payload: Bytes,
    headers: Headers,
    /// From [`REDELIVERIES_HEADER`]: `None` on a record read from its own topic.
    redeliveries: Option<u32>,
    pub(crate) due_ms: Option<u64>,
    settle: Settle,
}

/// How a message is settled.
enum Settle {
    /// Through its subscription's tracker, in the assignment (generation) it was
    /// received in.
    Live {
        subscription: Arc<Subscription>,
        generation: u64,
        /// The subscription's revocation count when it was received.
        revocations: u64,
    },
    /// In process: the test client's message.
    #[cfg(feature = "testing")]
    InProcess(ruststream::testing::TestMessage),
}

impl std::fmt::Debug for KafkaMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMessage")
            .field("topic", &self.topic)
            .field("origin", &self.origin)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("key", &self.key)
            .field("payload_len", &self.payload.len())
            .field("headers", &self.headers)
            .field("redeliveries", &self.redeliveries)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

fn parse<T: std::str::FromStr>(value: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(value?).ok()?.trim().parse().ok()
}

impl KafkaMessage {
    /// Copies a received record; the crate's own headers become fields.
    pub(crate) fn from_record(
        record: &BorrowedMessage<'_>,
        topic: Arc<str>,
        generation: u64,
        subscription: &Arc<Subscription>,
    ) -> Self {
        let mut headers = Headers::new();
        let mut redeliveries = None;
        let mut due_ms = None;
        let mut origin = None;
        if let Some(record_headers) = record.headers() {
            for index in 0..record_headers.count() {
                // rdkafka panics on a header name that is not UTF-8: such a header is
                // left out (with a warning) rather than taking the subscription down.
                let header = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    record_headers.try_get(index)
                }));
                let Ok(Some(header)) = header else {
                    tracing::warn!(
                        topic = %topic,
                        partition = record.partition(),
                        offset = record.offset(),
                        "a header of this record has a name that is not UTF-8; it is left out"
                    );
                    continue;
                };
                match header.key {
                    REDELIVERIES_HEADER => redeliveries = parse(header.value),
                    DUE_HEADER => due_ms = parse(header.value),
                    ORIGIN_HEADER => {
                        origin = header
                            .value
                            .and_then(|v| std::str::from_utf8(v).ok())
                            .map(str::to_owned);
                    }
                    name => headers.append(
                        name.to_owned(),
                        Bytes::copy_from_slice(header.value.unwrap_or_default()),
                    ),
                }
            }
        }
        Self {
            topic,
            origin,
            partition: record.partition(),
            offset: record.offset(),
            key: record.key().map(Bytes::copy_from_slice),
            payload: record
                .payload()
                .map_or_else(Bytes::new, Bytes::copy_from_slice),
            headers,
            redeliveries,
            due_ms,
            settle: Settle::Live {
                subscription: Arc::clone(subscription),
                generation,
                revocations: subscription
                    .revocations
                    .load(std::sync::atomic::Ordering::Acquire),
            },
        }
    }

    /// A message of the in-process test client: its partition is the one Kafka's
    /// default partitioner gives its key among `partitions`.
    #[cfg(feature = "testing")]
    pub(crate) fn in_process(message: ruststream::testing::TestMessage, partitions: i32) -> Self {
        let key = message.partition_key().map(Bytes::copy_from_slice);
        let topic: Arc<str> = Arc::from(message.name().unwrap_or_default());
        Self {
            topic,
            origin: None,
            partition: crate::testing::partition_for(key.as_deref(), partitions),
            offset: -1,
            key,
            payload: Bytes::copy_from_slice(message.payload()),
            headers: message.headers().clone(),
            redeliveries: None,
            due_ms: None,
            settle: Settle::InProcess(message),
        }
    }

    /// Whether its partition is still assigned as when it was received (live
    /// messages only; in process, always).
    pub(crate) fn is_current(&self) -> bool {
        match &self.settle {
            Settle::Live {
                subscription,
                generation,
                revocations,
            } => {
                *revocations
                    == subscription
                        .revocations
                        .load(std::sync::atomic::Ordering::Acquire)
                    || subscription.tracker.lock().is_current(
                        &self.topic,
                        self.partition,
                        *generation,
                    )
            }
            #[cfg(feature = "testing")]
            Settle::InProcess(_) => true,
        }
    }

    /// The topic it was read from (a retry copy: the retry topic).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition it was read from.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Its offset in that partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The record's key.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The consumer group's metadata, while the subscription is open.
    pub(crate) fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        use rdkafka::consumer::Consumer as _;
        match &self.settle {
            Settle::Live { subscription, .. } => {
                subscription.consumer.get()?.upgrade()?.group_metadata()
            }
            #[cfg(feature = "testing")]
            Settle::InProcess(_) => None,
        }
    }

    pub(crate) fn topic_arc(&self) -> &Arc<str> {
        &self.topic
    }

    /// Marks a live message settled in its subscription's tracker.
    fn settle_live(&self, subscription: &Subscription, generation: u64) {
        subscription
            .tracker
            .lock()
            .settle(&self.topic, self.partition, generation, self.offset);
    }

    /// Publishes the retry copy, due `delay` from now, then settles the original.
    async fn retry(
        &self,
        subscription: &Subscription,
        generation: u64,
        delay: Duration,
    ) -> Result<(), AckError> {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len() + 3);
        for (name, value) in self.headers.iter() {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let redeliveries = self.redeliveries.unwrap_or(0).saturating_add(1).to_string();
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let due = now_ms().saturating_add(delay_ms).to_string();
        let origin = self.origin.as_deref().unwrap_or(&self.topic);
        headers = headers
            .insert(Header {
                key: REDELIVERIES_HEADER,
                value: Some(redeliveries.as_bytes()),
            })
            .insert(Header {
                key: ORIGIN_HEADER,
                value: Some(origin.as_bytes()),
            });
        if delay_ms > 0 {
            headers = headers.insert(Header {
                key: DUE_HEADER,
                value: Some(due.as_bytes()),
            });
        }
        let mut record = FutureRecord::to(&subscription.retry_topic)
            .payload(&self.payload[..])
            .headers(headers);
        if let Some(key) = &self.key {
            record = record.key(&key[..]);
        }
        subscription
            .producer
            .send(record, Timeout::After(subscription.delivery_timeout))
            .await
            .map_err(|(error, _)| {
                AckError::Rejected(format!(
                    "the retry copy was not delivered to `{}`: {} (the message stays unsettled and comes back after a restart or rebalance)",
                    subscription.retry_topic,
                    subscription.redactor.redact(error)
                ))
            })?;
        self.settle_live(subscription, generation);
        Ok(())
    }
}

impl IncomingMessage for KafkaMessage {
    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn headers(&self) -> &Headers {
        &self.headers
    }

    async fn ack(self) -> Result<(), AckError> {
        match &self.settle {
            Settle::Live {
                subscription,
                generation,
                ..
            } => {
                self.settle_live(subscription, *generation);
                Ok(())
            }
            #[cfg(feature = "testing")]
            Settle::InProcess(_) => match self.settle {
                Settle::InProcess(message) => message.ack().await,
                Settle::Live { .. } => Ok(()),
            },
        }
    }

    fn ack_now(self) -> Result<(), Self> {
        match &self.settle {
            Settle::Live {
                subscription,
                generation,
                ..
            } => {
                self.settle_live(subscription, *generation);
                Ok(())
            }
            #[cfg(feature = "testing")]
            Settle::InProcess(_) => Err(self),
        }
    }

    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        match &self.settle {
            Settle::Live {
                subscription,
                generation,
                ..
            } => {
                if requeue {
                    self.retry(subscription, *generation, Duration::ZERO).await
                } else {
                    self.settle_live(subscription, *generation);
                    Ok(())
                }
            }
            #[cfg(feature = "testing")]
            Settle::InProcess(_) => match self.settle {
                Settle::InProcess(message) => message.nack(requeue).await,
                Settle::Live { .. } => Ok(()),
            },
        }
    }

    async fn nack_after(self, delay: Duration) -> Result<(), AckError> {
        match &self.settle {
            Settle::Live {
                subscription,
                generation,
                ..
            } => self.retry(subscription, *generation, delay).await,
            #[cfg(feature = "testing")]
            Settle::InProcess(_) => match self.settle {
                Settle::InProcess(message) => message.nack_after(delay).await,
                Settle::Live { .. } => Ok(()),
            },
        }
    }

    fn partition_key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    fn name(&self) -> Option<&str> {
        Some(self.origin.as_deref().unwrap_or(&self.topic))
    }

    /// `Some(n)` on a copy delivered through the retry topic (`n` retries so far);
    /// `None` on a record read from its own topic: Kafka does not count reads, and a
    /// record read again after a crash or a rebalance looks like a first delivery.
    fn redelivery_count(&self) -> Option<u32> {
        self.redeliveries
    }
}
