//! Publishing: `Publisher` and `Partitioned` for [`KafkaBroker`], records with an
//! explicit partition, and Kafka transactions ([`KafkaTransactionalPublisher`]).

use std::collections::HashMap;
use std::sync::Arc;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use ruststream::contract::{
    Headers, IncomingMessage, OutgoingMessage, Partitioned, Publisher, Transaction,
    TransactionalPublisher,
};

use crate::broker::{KafkaBroker, Producer_};
use crate::error::KafkaError;
use crate::message::KafkaMessage;
use crate::source::check_topic;

/// A record to publish with Kafka's own options: key, explicit partition, headers.
///
/// ```
/// use ruststream_kafka::Record;
///
/// let record = Record::new("orders", b"{}").key(b"customer-7").partition(2);
/// assert_eq!(record.topic(), "orders");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    topic: &'a str,
    payload: &'a [u8],
    key: Option<&'a [u8]>,
    partition: Option<i32>,
    headers: Option<&'a Headers>,
}

impl<'a> Record<'a> {
    /// A record of `payload` for `topic`.
    pub fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        Self {
            topic,
            payload,
            key: None,
            partition: None,
            headers: None,
        }
    }

    /// The key: it picks the partition (unless [`partition`](Self::partition) does),
    /// and consumers get it back as `partition_key()`.
    #[must_use]
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// An explicit partition.
    #[must_use]
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Headers (binary values, order and repeated names kept).
    #[must_use]
    pub fn headers(mut self, headers: &'a Headers) -> Self {
        self.headers = Some(headers);
        self
    }

    /// The topic.
    pub fn topic(&self) -> &'a str {
        self.topic
    }
}

impl<'a> From<OutgoingMessage<'a>> for Record<'a> {
    fn from(message: OutgoingMessage<'a>) -> Self {
        let mut record = Record::new(message.name(), message.payload());
        if !message.headers().is_empty() {
            record = record.headers(message.headers());
        }
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        record
    }
}

/// Where the cluster stored a published record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The partition.
    pub partition: i32,
    /// The offset in it.
    pub offset: i64,
}

/// The record headers of `headers`; a name with a NUL byte (which a consumer would
/// read cut short) is refused.
fn kafka_headers(topic: &str, headers: &Headers) -> Result<OwnedHeaders, KafkaError> {
    let mut out = OwnedHeaders::new_with_capacity(headers.len());
    for (name, value) in headers.iter() {
        if name.contains('\0') {
            return Err(KafkaError::publish(
                topic,
                format!(
                    "header name {name:?} contains a NUL byte, which Kafka clients read as its end: rename it"
                ),
            ));
        }
        out = out.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    Ok(out)
}

/// Sends `record` through `producer` and awaits its delivery report.
async fn send_with(
    broker: &KafkaBroker,
    producer: &Producer_,
    record: Record<'_>,
) -> Result<Delivered, KafkaError> {
    check_topic(record.topic)?;
    let headers = match record.headers {
        Some(headers) => Some(kafka_headers(record.topic, headers)?),
        None => None,
    };
    broker.ensure_topics(&[record.topic]).await?;
    let mut future = FutureRecord::to(record.topic).payload(record.payload);
    if let Some(key) = record.key {
        future = future.key(key);
    }
    if let Some(partition) = record.partition {
        future = future.partition(partition);
    }
    if let Some(headers) = headers {
        future = future.headers(headers);
    }
    match producer
        .send(future, Timeout::After(broker.config().delivery_timeout))
        .await
    {
        Ok(delivery) => Ok(Delivered {
            partition: delivery.partition,
            offset: delivery.offset,
        }),
        Err((error, _)) => Err(KafkaError::publish(record.topic, broker.redact(error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_name_with_a_nul_byte_is_refused() {
        let headers: Headers = [("ok", "1"), ("bad\0name", "2")].into_iter().collect();
        let refused = kafka_headers("orders", &headers).unwrap_err();
        assert!(refused.to_string().contains("NUL"), "{refused}");
        let fine: Headers = [("a", &b"\0\xff"[..])].into_iter().collect();
        assert!(kafka_headers("orders", &fine).is_ok(), "values are binary");
    }
}

impl KafkaBroker {
    /// Publishes `record` and returns where it was stored, once the cluster confirmed
    /// it (`acks=all`, idempotent producer).
    pub async fn send(&self, record: Record<'_>) -> Result<Delivered, KafkaError> {
        #[cfg(feature = "testing")]
        if let Some(client) = self.test_client() {
            return self.send_in_process(client, record).await;
        }
        let producer = &self.connected("publishing")?.producer;
        send_with(self, producer, record).await
    }

    /// In process: through the test client; the partition is the key's (offset -1).
    #[cfg(feature = "testing")]
    async fn send_in_process(
        &self,
        client: &ruststream::testing::TestClient,
        record: Record<'_>,
    ) -> Result<Delivered, KafkaError> {
        if self.inner.shutdown.is_triggered() {
            return Err(KafkaError::Closed);
        }
        check_topic(record.topic)?;
        let mut message = OutgoingMessage::new(record.topic, record.payload);
        if let Some(headers) = record.headers {
            message = message.with_headers(headers);
        }
        if let Some(key) = record.key {
            message = message.with_key(key);
        }
        client
            .publish(message)
            .await
            .map_err(|error| KafkaError::publish(record.topic, error))?;
        let partitions = self
            .config()
            .create_topics
            .map_or(1, |defaults| defaults.partitions);
        Ok(Delivered {
            partition: record
                .partition
                .unwrap_or_else(|| crate::testing::partition_for(record.key, partitions)),
            offset: -1,
        })
    }

    /// A publisher whose transactions are Kafka transactions under
    /// `transactional_id` (unique per producing instance; a new one with the same id
    /// fences the old one off). The producer registers with the cluster at the first
    /// `begin`.
    pub fn transactional(
        &self,
        transactional_id: &str,
    ) -> Result<KafkaTransactionalPublisher, KafkaError> {
        #[cfg(feature = "testing")]
        if self.test_client().is_some() {
            return Err(transaction_error(
                "init",
                "Kafka transactions need a cluster; the in-process broker has none",
            ));
        }
        let config = self.config();
        let mut client = config.client_config();
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("transactional.id", transactional_id)
            .set("compression.type", config.compression.as_str())
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().to_string(),
            );
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        let producer: Producer_ = client
            .create_with_context(self.inner.context.clone())
            .map_err(|error| transaction_error("init", self.redact(error)))?;
        Ok(KafkaTransactionalPublisher {
            broker: self.clone(),
            producer,
            one_at_a_time: Arc::new(tokio::sync::Mutex::new(false)),
        })
    }
}

fn transaction_error(step: &'static str, reason: impl std::fmt::Display) -> KafkaError {
    KafkaError::Transaction {
        step,
        reason: reason.to_string(),
    }
}

/// Runs a blocking librdkafka call off the runtime's threads.
async fn blocking(
    step: &'static str,
    call: impl FnOnce() -> rdkafka::error::KafkaResult<()> + Send + 'static,
    broker: &KafkaBroker,
) -> Result<(), KafkaError> {
    match tokio::task::spawn_blocking(call).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(transaction_error(step, broker.redact(error))),
        Err(error) => Err(transaction_error(step, error)),
    }
}

impl Publisher for KafkaBroker {
    type Error = KafkaError;

    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), KafkaError> {
        self.send(msg.into()).await.map(|_| ())
    }
}

impl Partitioned for KafkaBroker {}

/// A publisher through Kafka transactions: what a transaction publishes becomes
/// visible to `read_committed` consumers (every subscription of this crate) at commit,
/// and never after an abort. One transaction runs at a time; `begin` waits for the
/// previous one to end.
///
/// [`KafkaTransaction::consumed`] adds consumed messages, whose offsets then commit
/// inside the transaction: a consume-transform-produce step that happens exactly once.
#[derive(Clone)]
pub struct KafkaTransactionalPublisher {
    broker: KafkaBroker,
    producer: Producer_,
    /// Held by the running transaction; `true` once the producer is registered.
    one_at_a_time: Arc<tokio::sync::Mutex<bool>>,
}

impl std::fmt::Debug for KafkaTransactionalPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransactionalPublisher")
            .finish_non_exhaustive()
    }
}

impl Publisher for KafkaTransactionalPublisher {
    type Error = KafkaError;

    /// A transaction of one message.
    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), KafkaError> {
        let mut transaction = self.begin().await?;
        transaction.publish(msg).await?;
        transaction.commit().await
    }
}

impl TransactionalPublisher for KafkaTransactionalPublisher {
    type Transaction = KafkaTransaction;

    async fn begin(&self) -> Result<KafkaTransaction, KafkaError> {
        if self.broker.inner.shutdown.is_triggered() {
            return Err(KafkaError::Closed);
        }
        let mut turn = Arc::clone(&self.one_at_a_time).lock_owned().await;
        if !*turn {
            let producer = self.producer.clone();
            let timeout = self.broker.config().operation_timeout;
            blocking(
                "init",
                move || producer.init_transactions(timeout),
                &self.broker,
            )
            .await?;
            *turn = true;
        }
        self.producer
            .begin_transaction()
            .map_err(|error| transaction_error("begin", self.broker.redact(error)))?;
        Ok(KafkaTransaction {
            broker: self.broker.clone(),
            producer: self.producer.clone(),
            consumed: Vec::new(),
            turn: Some(turn),
        })
    }
}

/// A running Kafka transaction. Dropping it without `commit` aborts it.
pub struct KafkaTransaction {
    broker: KafkaBroker,
    producer: Producer_,
    consumed: Vec<KafkaMessage>,
    turn: Option<tokio::sync::OwnedMutexGuard<bool>>,
}

impl std::fmt::Debug for KafkaTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransaction")
            .field("consumed", &self.consumed.len())
            .finish_non_exhaustive()
    }
}

impl KafkaTransaction {
    /// Publishes a record with Kafka's options inside the transaction.
    pub async fn send(&mut self, record: Record<'_>) -> Result<Delivered, KafkaError> {
        send_with(&self.broker, &self.producer, record)
            .await
            .map_err(|error| transaction_error("publish", error))
    }

    /// Adds a consumed message: its offset commits with the transaction (and its
    /// subscription counts it settled once the transaction committed). After an abort
    /// it stays unsettled, so it is delivered again.
    pub fn consumed(&mut self, message: KafkaMessage) {
        self.consumed.push(message);
    }

    /// The offsets to commit for the consumed messages: one past the highest of each
    /// partition.
    fn offsets(&self) -> TopicPartitionList {
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        for message in &self.consumed {
            let offset = next
                .entry((message.topic(), message.partition()))
                .or_insert(0);
            *offset = (*offset).max(message.offset() + 1);
        }
        let mut list = TopicPartitionList::with_capacity(next.len());
        for ((topic, partition), offset) in next {
            let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
        }
        list
    }
}

impl Transaction for KafkaTransaction {
    type Error = KafkaError;

    async fn publish(&mut self, msg: OutgoingMessage<'_>) -> Result<(), KafkaError> {
        self.send(msg.into()).await.map(|_| ())
    }

    async fn commit(mut self) -> Result<(), KafkaError> {
        let timeout = self.broker.config().operation_timeout;
        if !self.consumed.is_empty() {
            let group = self
                .consumed
                .first()
                .and_then(KafkaMessage::group_metadata)
                .ok_or_else(|| {
                    transaction_error(
                        "offsets",
                        "the consumed messages' subscription is closed; abort and let them be delivered again",
                    )
                })?;
            let offsets = self.offsets();
            let producer = self.producer.clone();
            blocking(
                "offsets",
                move || producer.send_offsets_to_transaction(&offsets, &group, timeout),
                &self.broker,
            )
            .await?;
        }
        let producer = self.producer.clone();
        let _turn = self.turn.take();
        blocking(
            "commit",
            move || producer.commit_transaction(timeout),
            &self.broker,
        )
        .await?;
        for message in std::mem::take(&mut self.consumed) {
            let _ = message.ack_now();
        }
        Ok(())
    }

    async fn abort(mut self) -> Result<(), KafkaError> {
        let timeout = self.broker.config().operation_timeout;
        let producer = self.producer.clone();
        let _turn = self.turn.take();
        blocking(
            "abort",
            move || producer.abort_transaction(timeout),
            &self.broker,
        )
        .await
    }
}

impl Drop for KafkaTransaction {
    fn drop(&mut self) {
        // Neither committed nor aborted: abort, and hold the turn until it is done.
        let Some(turn) = self.turn.take() else {
            return;
        };
        let producer = self.producer.clone();
        let timeout = self.broker.config().operation_timeout;
        let abort = move || {
            if let Err(error) = producer.abort_transaction(timeout) {
                tracing::warn!("aborting a dropped Kafka transaction failed: {error}");
            }
            drop(turn);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(abort);
            }
            Err(_) => abort(),
        }
    }
}
