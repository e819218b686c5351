//! [`KafkaBroker`]: the connection (a producer and an admin client) and its lifecycle.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use ruststream::contract::{Broker, Subscribe, SubscriptionSource};
use ruststream::kit::{Redactor, Shutdown, ShutdownWatch};

use crate::config::Config;
use crate::error::KafkaError;
use crate::source::KafkaSource;
use crate::subscriber::KafkaSubscriber;

/// The librdkafka client context of every client the crate creates: its logs and
/// errors go to `tracing`, redacted.
#[derive(Clone)]
pub(crate) struct LogContext {
    pub(crate) redactor: Arc<Redactor>,
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let message = self.redactor.redact(log_message);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility = fac, "librdkafka: {message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(
            "librdkafka: {}: {}",
            self.redactor.redact(&error),
            self.redactor.redact(reason)
        );
    }
}

impl rdkafka::consumer::ConsumerContext for LogContext {}

/// The crate's producer type.
pub(crate) type Producer_ = FutureProducer<LogContext>;

/// A connection to a Kafka cluster: `Broker`, `Subscribe`, `Publisher`.
///
/// Cloning is cheap and shares the connection. `connect` creates the idempotent producer
/// (`acks=all`) and checks that the cluster answers; every subscription opens a
/// consumer of its own, in its consumer group.
#[derive(Clone)]
pub struct KafkaBroker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) context: LogContext,
    pub(crate) connected: OnceLock<Connected>,
    pub(crate) shutdown: Shutdown,
    connecting: tokio::sync::Mutex<()>,
    /// Topics known to exist (created or checked), so a publish checks a name once.
    known_topics: Mutex<HashSet<String>>,
    /// The consumer tasks still running, which `shutdown` waits for.
    pub(crate) consumers: Arc<Consumers>,
    /// In process (feature `testing`): the test client everything goes through.
    #[cfg(feature = "testing")]
    test_client: OnceLock<ruststream::testing::TestClient>,
}

pub(crate) struct Connected {
    pub(crate) producer: Producer_,
    admin: AdminClient<LogContext>,
}

impl std::fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("config", &self.inner.config)
            .field("connected", &self.inner.connected.get().is_some())
            .field("shut_down", &self.inner.shutdown.is_triggered())
            .finish()
    }
}

impl KafkaBroker {
    /// A broker for `config`, not connected yet.
    pub fn new(config: Config) -> Self {
        let context = LogContext {
            redactor: Arc::new(config.redactor()),
        };
        Self {
            inner: Arc::new(Inner {
                config,
                context,
                connected: OnceLock::new(),
                shutdown: Shutdown::new(),
                connecting: tokio::sync::Mutex::new(()),
                known_topics: Mutex::new(HashSet::new()),
                consumers: Arc::new(Consumers::default()),
                #[cfg(feature = "testing")]
                test_client: OnceLock::new(),
            }),
        }
    }

    #[cfg(feature = "testing")]
    pub(crate) fn test_client(&self) -> Option<&ruststream::testing::TestClient> {
        self.inner.test_client.get()
    }

    #[cfg(feature = "testing")]
    pub(crate) fn with_test_client(self, client: ruststream::testing::TestClient) -> Self {
        let _ = self.inner.test_client.set(client);
        self
    }

    /// The broker's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn redact(&self, text: impl std::fmt::Display) -> String {
        self.inner.context.redactor.redact(text)
    }

    pub(crate) fn shutdown_watch(&self) -> ShutdownWatch {
        self.inner.shutdown.watch()
    }

    /// The connection, or why there is none.
    pub(crate) fn connected(&self, doing: &'static str) -> Result<&Connected, KafkaError> {
        if self.inner.shutdown.is_triggered() {
            return Err(KafkaError::Closed);
        }
        self.inner
            .connected
            .get()
            .ok_or(KafkaError::NotConnected(doing))
    }

    /// The producer, for settlement by republishing (retries).
    pub(crate) fn producer(&self) -> Result<Producer_, KafkaError> {
        Ok(self.connected("subscribing")?.producer.clone())
    }

    /// Creates those of `topics` that do not exist yet (when the config creates topics).
    pub(crate) async fn ensure_topics(&self, topics: &[&str]) -> Result<(), KafkaError> {
        match self.inner.config.create_topics {
            Some(defaults) => self.create_missing(topics, defaults).await,
            None => Ok(()),
        }
    }

    /// Creates those of `topics` that do not exist yet, with `partitions` partitions
    /// and the replication factor of `Config::create_topics`; existing ones are left
    /// as they are.
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) -> Result<(), KafkaError> {
        let replication = self
            .inner
            .config
            .create_topics
            .map_or(1, |defaults| defaults.replication);
        self.create_missing(
            topics,
            crate::config::TopicDefaults {
                partitions: partitions.max(1),
                replication,
            },
        )
        .await
    }

    async fn create_missing(
        &self,
        topics: &[&str],
        defaults: crate::config::TopicDefaults,
    ) -> Result<(), KafkaError> {
        let missing: Vec<&str> = {
            let known = self.inner.known_topics.lock();
            topics
                .iter()
                .copied()
                .filter(|topic| !known.contains(*topic))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let admin = &self.connected("creating topics")?.admin;
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|topic| {
                NewTopic::new(
                    topic,
                    defaults.partitions,
                    TopicReplication::Fixed(defaults.replication),
                )
            })
            .collect();
        let options =
            AdminOptions::new().operation_timeout(Some(self.inner.config.operation_timeout));
        let results = admin
            .create_topics(&new, &options)
            .await
            .map_err(|error| KafkaError::Admin(self.redact(error)))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaError::Admin(format!(
                        "creating topic `{topic}` failed: {code}"
                    )));
                }
            }
        }
        self.inner
            .known_topics
            .lock()
            .extend(missing.iter().map(|topic| (*topic).to_owned()));
        Ok(())
    }

    /// Deletes `topics` (for tests and tools that clean up after themselves).
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<(), KafkaError> {
        let admin = &self.connected("deleting topics")?.admin;
        let options =
            AdminOptions::new().operation_timeout(Some(self.inner.config.operation_timeout));
        let results = admin
            .delete_topics(topics, &options)
            .await
            .map_err(|error| KafkaError::Admin(self.redact(error)))?;
        let mut known = self.inner.known_topics.lock();
        for result in results {
            match result {
                Ok(topic) => {
                    known.remove(&topic);
                }
                Err((topic, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    known.remove(&topic);
                }
                Err((topic, code)) => {
                    return Err(KafkaError::Admin(format!(
                        "deleting topic `{topic}` failed: {code}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Deletes consumer groups (for tests and tools that clean up after themselves).
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<(), KafkaError> {
        let admin = &self.connected("deleting groups")?.admin;
        let options =
            AdminOptions::new().operation_timeout(Some(self.inner.config.operation_timeout));
        admin
            .delete_groups(groups, &options)
            .await
            .map_err(|error| KafkaError::Admin(self.redact(error)))?;
        Ok(())
    }

    /// For a group that starts from the latest offsets: when the group has no member,
    /// commits the current end of each partition of `topics` where it has committed
    /// nothing yet, so its consumer starts exactly there, and a message published once
    /// `subscribe` returned is read. Otherwise (live members, or the cluster refuses)
    /// the consumer's `auto.offset.reset=latest` applies.
    pub(crate) async fn commit_ends_where_uncommitted(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<(), KafkaError> {
        let mut client = self.inner.config.client_config();
        client
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer<LogContext> = client
            .create_with_context(self.inner.context.clone())
            .map_err(|error| KafkaError::Admin(self.redact(error)))?;
        let timeout = self.inner.config.operation_timeout;
        let topics: Vec<String> = topics.iter().map(|topic| (*topic).to_owned()).collect();
        let group = group.to_owned();
        let done = tokio::task::spawn_blocking(move || {
            // Only for a group nobody is in: a live member's unsettled messages must
            // not be skipped.
            let groups = consumer.fetch_group_list(Some(&group), timeout)?;
            if groups
                .groups()
                .iter()
                .any(|found| found.name() == group && !found.members().is_empty())
            {
                return Ok(());
            }
            let mut ends = TopicPartitionList::new();
            for topic in &topics {
                let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
                let partitions = metadata
                    .topics()
                    .first()
                    .map_or(0, |found| found.partitions().len());
                let mut list = TopicPartitionList::with_capacity(partitions);
                for partition in 0..partitions {
                    list.add_partition(topic, i32::try_from(partition).unwrap_or(i32::MAX));
                }
                for element in consumer.committed_offsets(list, timeout)?.elements() {
                    if matches!(element.offset(), Offset::Offset(_)) {
                        continue;
                    }
                    let (_, high) =
                        consumer.fetch_watermarks(topic, element.partition(), timeout)?;
                    ends.add_partition_offset(topic, element.partition(), Offset::Offset(high))?;
                }
            }
            if ends.count() > 0 {
                consumer.commit(&ends, rdkafka::consumer::CommitMode::Sync)?;
            }
            Ok::<_, rdkafka::error::KafkaError>(())
        })
        .await
        .map_err(|error| KafkaError::Admin(error.to_string()))?;
        done.map_err(|error| KafkaError::Admin(self.redact(error)))
    }

    /// The offsets `group` has committed on `topic`, per partition: the next offset
    /// the group reads there, or `None` where it committed nothing.
    pub async fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(i32, Option<i64>)>, KafkaError> {
        self.connected("reading committed offsets")?;
        let mut client = self.inner.config.client_config();
        client
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer<LogContext> = client
            .create_with_context(self.inner.context.clone())
            .map_err(|error| KafkaError::Admin(self.redact(error)))?;
        let timeout = self.inner.config.operation_timeout;
        let topic = topic.to_owned();
        let read = tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            let partitions = metadata
                .topics()
                .first()
                .map_or(0, |found| found.partitions().len());
            let mut list = TopicPartitionList::with_capacity(partitions);
            for partition in 0..partitions {
                list.add_partition(&topic, i32::try_from(partition).unwrap_or(i32::MAX));
            }
            let committed = consumer.committed_offsets(list, timeout)?;
            Ok::<_, rdkafka::error::KafkaError>(
                committed
                    .elements()
                    .iter()
                    .map(|element| {
                        let offset = match element.offset() {
                            Offset::Offset(offset) => Some(offset),
                            _ => None,
                        };
                        (element.partition(), offset)
                    })
                    .collect(),
            )
        })
        .await
        .map_err(|error| KafkaError::Admin(error.to_string()))?;
        read.map_err(|error| KafkaError::Admin(self.redact(error)))
    }

    async fn connect_live(&self) -> Result<(), KafkaError> {
        let config = &self.inner.config;
        let connect_error = |reason: String| KafkaError::Connect {
            servers: self.redact(&config.servers),
            reason,
        };
        let mut producer_config = config.client_config();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Keys pick the partition the Java client and aiokafka pick.
            .set("partitioner", "murmur2_random")
            .set("compression.type", config.compression.as_str())
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().to_string(),
            );
        // Passed-through properties win over the crate's own.
        for (key, value) in &config.properties {
            producer_config.set(key, value);
        }
        let producer: Producer_ = producer_config
            .create_with_context(self.inner.context.clone())
            .map_err(|error| connect_error(self.redact(error)))?;
        let admin: AdminClient<LogContext> = config
            .client_config()
            .create_with_context(self.inner.context.clone())
            .map_err(|error| connect_error(self.redact(error)))?;
        let probe = producer.clone();
        let timeout = config.operation_timeout;
        let answered = tokio::task::spawn_blocking(move || {
            probe.client().fetch_metadata(None, timeout).map(|_| ())
        })
        .await
        .map_err(|error| connect_error(error.to_string()))?;
        answered.map_err(|error| connect_error(self.redact(error)))?;
        let _ = self.inner.connected.set(Connected { producer, admin });
        Ok(())
    }
}

impl Broker for KafkaBroker {
    type Error = KafkaError;

    async fn connect(&self) -> Result<(), KafkaError> {
        if self.inner.shutdown.is_triggered() {
            return Err(KafkaError::Closed);
        }
        #[cfg(feature = "testing")]
        if let Some(client) = self.test_client() {
            return client
                .connect()
                .await
                .map_err(|error| KafkaError::InProcess(error.to_string()));
        }
        if self.inner.connected.get().is_some() {
            return Ok(());
        }
        let _guard = self.inner.connecting.lock().await;
        if self.inner.connected.get().is_some() {
            return Ok(());
        }
        self.connect_live().await
    }

    async fn shutdown(&self) -> Result<(), KafkaError> {
        if !self.inner.shutdown.trigger() {
            return Ok(());
        }
        #[cfg(feature = "testing")]
        if let Some(client) = self.test_client() {
            return client
                .shutdown()
                .await
                .map_err(|error| KafkaError::InProcess(error.to_string()));
        }
        let Some(connected) = self.inner.connected.get() else {
            return Ok(());
        };
        // Every subscription commits what is settled and leaves its group first.
        let timeout = self.inner.config.shutdown_timeout;
        if bounded(timeout, self.inner.consumers.all_ended())
            .await
            .is_none()
        {
            tracing::warn!(
                "consumers still closing after the shutdown timeout of {timeout:?}; their unsettled messages are delivered again"
            );
        }
        let producer = connected.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        match flushed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(KafkaError::publish(
                "(queued publishes)",
                format!(
                    "not delivered within the shutdown timeout of {timeout:?}: {}",
                    self.redact(error)
                ),
            )),
            Err(error) => Err(KafkaError::publish("(queued publishes)", error)),
        }
    }

    fn server(&self) -> Option<ruststream::ServerSpec> {
        Some(ruststream::contract::DescribeServer::describe_server(self))
    }
}

impl Subscribe for KafkaBroker {
    type Subscriber = KafkaSubscriber;

    async fn subscribe(&self, name: &str) -> Result<KafkaSubscriber, KafkaError> {
        KafkaSource::new(name).subscribe(self).await
    }
}

/// Counts the running consumer tasks, so `shutdown` can wait until each has committed
/// and left its group.
#[derive(Default)]
pub(crate) struct Consumers {
    running: std::sync::atomic::AtomicUsize,
    ended: tokio::sync::Notify,
}

/// One running consumer task; dropping it counts it ended.
pub(crate) struct RunningTask(Arc<Consumers>);

impl Drop for RunningTask {
    fn drop(&mut self) {
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0.ended.notify_waiters();
    }
}

impl Consumers {
    pub(crate) fn start(self: &Arc<Self>) -> RunningTask {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        RunningTask(Arc::clone(self))
    }

    async fn all_ended(&self) {
        loop {
            let ended = self.ended.notified();
            if self.running.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// Waits at most `timeout` for `future`.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::time::timeout(timeout, future).await.ok()
}
