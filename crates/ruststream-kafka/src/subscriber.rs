//! [`KafkaSubscriber`]: a consumer in its group, driven by a task of its own, and the
//! stream of its messages.
//!
//! The task polls the consumer all the time, so the group's rebalances are served even
//! while handlers are busy; it commits the tracked offsets on an interval, on every
//! revocation (synchronously, before the partition goes) and when the subscription
//! ends. Retry copies that are not due yet pause their partition until they are.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt as _;
use futures::Stream;
use parking_lot::Mutex;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use ruststream::contract::{BatchSubscriber, Capabilities, HeaderSupport, Subscriber};
use ruststream::kit::{Batcher, Shutdown, ShutdownWatch};
use tokio::sync::{mpsc, watch};

use crate::broker::{KafkaBroker, LogContext, bounded};
use crate::error::KafkaError;
use crate::message::{KafkaMessage, Subscription, now_ms};
use crate::source::{KafkaSource, StartFrom, check_topic};
use crate::tracker::{Commit, Tracker};

/// The consumer's context: logs, and the tracker's part in rebalances.
pub(crate) struct GroupContext {
    log: LogContext,
    subscription: Arc<Subscription>,
    assignments: watch::Sender<u64>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        // Forget the partitions under the lock, so no settlement after this point
        // counts for them, then commit what was settled before it.
        let commits: Vec<Commit> = {
            let mut tracker = self.subscription.tracker.lock();
            self.subscription
                .revocations
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            revoked
                .elements()
                .iter()
                .filter_map(|element| tracker.revoke(element.topic(), element.partition()))
                .collect()
        };
        if commits.is_empty() {
            return;
        }
        if let Err(error) = consumer.commit(&commit_list(&commits), CommitMode::Sync) {
            tracing::warn!(
                "committing the offsets of revoked partitions failed: {} (their settled messages will be delivered again to the new owner)",
                self.subscription.redactor.redact(error)
            );
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                {
                    let mut tracker = self.subscription.tracker.lock();
                    for element in assigned.elements() {
                        tracker.assign(element.topic(), element.partition());
                    }
                }
                self.assignments.send_modify(|count| *count += 1);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::warn!(
                "consumer group rebalance failed: {}",
                self.subscription.redactor.redact(error)
            ),
        }
    }
}

pub(crate) type Consumer_ = StreamConsumer<GroupContext>;

fn commit_list(commits: &[Commit]) -> TopicPartitionList {
    let mut list = TopicPartitionList::with_capacity(commits.len());
    for (topic, partition, offset) in commits {
        // Only fails for an invalid offset, which a tracked one never is.
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    list
}

fn one_partition(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::with_capacity(1);
    list.add_partition(topic, partition);
    list
}

/// A subscription to Kafka topics in a consumer group.
pub struct KafkaSubscriber {
    intake: Intake,
    batcher: Batcher<KafkaMessage, KafkaError>,
    /// Set when the subscriber is dropped: the task commits and closes the consumer.
    stop: Shutdown,
    driver: Option<tokio::task::JoinHandle<()>>,
    topics: Vec<String>,
    group: String,
    retry_topic: String,
}

/// Where a subscriber's messages come from.
enum Intake {
    /// The consumer task.
    Live {
        received: mpsc::Receiver<KafkaMessage>,
        shutdown: ShutdownWatch,
    },
    /// The in-process test client: one subscription per topic, polled in turn.
    #[cfg(feature = "testing")]
    InProcess {
        subscribers: Vec<ruststream::testing::TestSubscriber>,
        next: usize,
        partitions: i32,
    },
}

impl std::fmt::Debug for KafkaSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscriber")
            .field("topics", &self.topics)
            .field("group", &self.group)
            .field("retry_topic", &self.retry_topic)
            .finish_non_exhaustive()
    }
}

impl Drop for KafkaSubscriber {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

impl Intake {
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<KafkaMessage, KafkaError>>> {
        match self {
            Self::Live { received, shutdown } => loop {
                match received.poll_recv(cx) {
                    Poll::Ready(Some(message)) => {
                        // A message of a partition revoked while it waited here belongs
                        // to the new owner now.
                        if message.is_current() {
                            return Poll::Ready(Some(Ok(message)));
                        }
                    }
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => {
                        return match shutdown.poll_triggered(cx) {
                            Poll::Ready(()) => Poll::Ready(None),
                            Poll::Pending => Poll::Pending,
                        };
                    }
                }
            },
            #[cfg(feature = "testing")]
            Self::InProcess {
                subscribers,
                next,
                partitions,
            } => {
                use futures::StreamExt as _;
                let count = subscribers.len();
                let mut ended = 0;
                for _ in 0..count {
                    let index = *next % count;
                    *next = next.wrapping_add(1);
                    let Some(subscriber) = subscribers.get_mut(index) else {
                        continue;
                    };
                    let mut stream =
                        std::pin::pin!(ruststream::contract::Subscriber::stream(subscriber));
                    match stream.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(message))) => {
                            return Poll::Ready(Some(Ok(KafkaMessage::in_process(
                                message,
                                *partitions,
                            ))));
                        }
                        Poll::Ready(Some(Err(never))) => match never {},
                        Poll::Ready(None) => ended += 1,
                        Poll::Pending => {}
                    }
                }
                if ended == count {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl KafkaSubscriber {
    /// The topics read.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Ends the subscription and waits until it is over: the settled offsets are
    /// committed and the consumer has left its group. (Dropping the subscriber does the
    /// same in the background.) Messages still unsettled are delivered again, to this
    /// group's next owner of their partition.
    pub async fn close(mut self) {
        self.stop.trigger();
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
    }

    /// The retry topic of `nack(true)` and `nack_after`.
    pub fn retry_topic(&self) -> &str {
        &self.retry_topic
    }

    pub(crate) async fn open(
        broker: &KafkaBroker,
        source: KafkaSource,
    ) -> Result<Self, KafkaError> {
        let config = broker.config();
        let describe = || source.topics.join(", ");
        if source.topics.is_empty() {
            return Err(KafkaError::Subscribe {
                topics: String::new(),
                reason: "no topic given".to_owned(),
            });
        }
        for topic in &source.topics {
            check_topic(topic)?;
        }
        let group = source
            .group
            .clone()
            .or_else(|| config.group_id.clone())
            .ok_or_else(|| KafkaError::Subscribe {
                topics: describe(),
                reason: "no consumer group: set one with `KafkaSource::new(..).group(\"name\")` or `Config::group_id(\"name\")`".to_owned(),
            })?;
        let retry_topic = source.retry_topic_in(&group);
        check_topic(&retry_topic)?;
        #[cfg(feature = "testing")]
        if let Some(client) = broker.test_client() {
            let mut subscribers = Vec::with_capacity(source.topics.len());
            for topic in &source.topics {
                subscribers.push(client.subscribe_to(topic, Some(&group)).await.map_err(
                    |error| KafkaError::Subscribe {
                        topics: describe(),
                        reason: error.to_string(),
                    },
                )?);
            }
            return Ok(Self {
                intake: Intake::InProcess {
                    subscribers,
                    next: 0,
                    partitions: config
                        .create_topics
                        .map_or(1, |defaults| defaults.partitions),
                },
                batcher: Batcher::new(),
                stop: Shutdown::new(),
                driver: None,
                topics: source.topics,
                group,
                retry_topic,
            });
        }
        let producer = broker.producer()?;
        let mut all: Vec<&str> = source.topics.iter().map(String::as_str).collect();
        if !all.contains(&retry_topic.as_str()) {
            all.push(&retry_topic);
        }
        broker.ensure_topics(&all).await?;
        if source.start == StartFrom::Latest
            && let Err(error) = broker.commit_ends_where_uncommitted(&group, &all).await
        {
            tracing::debug!(%group, "starting from the latest offsets by `auto.offset.reset` ({error})");
        }

        let subscription = Arc::new(Subscription {
            tracker: Mutex::new(Tracker::default()),
            revocations: std::sync::atomic::AtomicU64::new(0),
            producer,
            retry_topic: retry_topic.clone(),
            delivery_timeout: config.delivery_timeout,
            redactor: Arc::clone(&broker.inner.context.redactor),
            consumer: std::sync::OnceLock::new(),
        });
        let (assignments, mut assigned) = watch::channel(0u64);
        let context = GroupContext {
            log: broker.inner.context.clone(),
            subscription: Arc::clone(&subscription),
            assignments,
        };
        let session_ms = config.session_timeout.as_millis().max(1000);
        let mut client = config.client_config();
        client
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", session_ms.to_string())
            .set("heartbeat.interval.ms", (session_ms / 3).to_string())
            .set(
                "auto.offset.reset",
                match source.start {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            );
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        let subscribe_error = |reason: String| KafkaError::Subscribe {
            topics: describe(),
            reason,
        };
        let consumer: Consumer_ = client
            .create_with_context(context)
            .map_err(|error| subscribe_error(broker.redact(error)))?;
        consumer
            .subscribe(&all)
            .map_err(|error| subscribe_error(broker.redact(error)))?;

        let (sender, received) = mpsc::channel(config.prefetch);
        let stop = Shutdown::new();
        let (stop_for_task, shutdown) = (stop.clone(), broker.inner.shutdown.clone());
        let consumer = Arc::new(consumer);
        let _ = subscription.consumer.set(Arc::downgrade(&consumer));
        let driver = Driver {
            consumer,
            subscription: Arc::clone(&subscription),
            sender,
            held: HashMap::new(),
            commit_interval: config.commit_interval,
            burst: config.prefetch.min(64),
        };
        let running = broker.inner.consumers.start();
        let driver = tokio::spawn(async move {
            driver.run(stop_for_task, shutdown).await;
            drop(running);
        });

        // Return once the group has handed this member its partitions (maybe none), so
        // what is published next is read.
        match bounded(config.join_timeout, assigned.changed()).await {
            Some(Ok(())) => {}
            Some(Err(_)) => {
                return Err(subscribe_error(
                    "the consumer stopped before joining its group".to_owned(),
                ));
            }
            None => tracing::warn!(
                topics = %describe(),
                %group,
                "the consumer group did not assign partitions within {:?}; the subscription starts anyway and reads once it does",
                config.join_timeout
            ),
        }
        Ok(Self {
            intake: Intake::Live {
                received,
                shutdown: broker.shutdown_watch(),
            },
            batcher: Batcher::new(),
            stop,
            driver: Some(driver),
            topics: source.topics,
            group,
            retry_topic,
        })
    }
}

/// The task that owns the consumer.
struct Driver {
    consumer: Arc<Consumer_>,
    subscription: Arc<Subscription>,
    sender: mpsc::Sender<KafkaMessage>,
    /// Per paused partition: received messages waiting for the first one to be due.
    held: HashMap<(Arc<str>, i32), VecDeque<KafkaMessage>>,
    commit_interval: Duration,
    /// How many messages the task takes room for at once.
    burst: usize,
}

impl Driver {
    async fn run(mut self, stop: Shutdown, shutdown: Shutdown) {
        let stopped = async {
            tokio::select! {
                () = stop.triggered() => {}
                () = shutdown.triggered() => {}
            }
        };
        tokio::pin!(stopped);
        // A handle of its own, so the permits it gives borrow it rather than `self`.
        let sender = self.sender.clone();
        let consumer = Arc::clone(&self.consumer);
        let mut commits = tokio::time::interval(self.commit_interval);
        commits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = self.next_due();
            // Room for a burst of messages first: the task wakes once per burst, not
            // once per message, while handlers keep the queue full.
            let mut permits = tokio::select! {
                biased;
                () = &mut stopped => break,
                _ = commits.tick() => {
                    self.commit(CommitMode::Async);
                    continue;
                }
                permits = sender.reserve_many(self.burst) => match permits {
                    Ok(permits) => permits,
                    Err(_) => break,
                },
            };
            let first = tokio::select! {
                biased;
                () = &mut stopped => break,
                _ = commits.tick() => {
                    self.commit(CommitMode::Async);
                    continue;
                }
                () = sleep_until_ms(due), if due.is_some() => {
                    drop(permits);
                    if !self.release_due().await {
                        break;
                    }
                    continue;
                }
                received = consumer.recv() => received,
            };
            let mut received = Some(first);
            while let Some(result) = received.take() {
                let Some(permit) = permits.next() else {
                    break;
                };
                match result {
                    Ok(record) => self.accept(&record, permit),
                    Err(error) => tracing::warn!(
                        "receiving from Kafka: {}",
                        self.subscription.redactor.redact(error)
                    ),
                }
                if permits.len() > 0 {
                    // What librdkafka already holds, without waiting.
                    received = consumer.recv().now_or_never();
                }
            }
        }
        // The end: commit what is settled, then close the consumer (which leaves the
        // group; its revocation commits once more), off the runtime's threads.
        let commits = self.subscription.tracker.lock().all_commits();
        drop(consumer);
        let consumer = self.consumer;
        self.held.clear();
        let redactor = Arc::clone(&self.subscription.redactor);
        let closed = tokio::task::spawn_blocking(move || {
            if !commits.is_empty()
                && let Err(error) = consumer.commit(&commit_list(&commits), CommitMode::Sync)
            {
                tracing::warn!("the final commit failed: {}", redactor.redact(error));
            }
            drop(consumer);
        });
        let _ = closed.await;
    }

    /// Registers a received record with the tracker and hands it out (or holds it until
    /// it is due). A record of a partition no longer assigned is skipped.
    fn accept(&mut self, record: &BorrowedMessage<'_>, permit: mpsc::Permit<'_, KafkaMessage>) {
        let registered = self.subscription.tracker.lock().register(
            record.topic(),
            record.partition(),
            record.offset(),
        );
        let Some((topic, generation)) = registered else {
            return;
        };
        let message = KafkaMessage::from_record(record, topic, generation, &self.subscription);
        if self.held.is_empty() && message.due_ms.is_none() {
            permit.send(message);
            return;
        }
        let key = (Arc::clone(message.topic_arc()), message.partition());
        if let Some(queue) = self.held.get_mut(&key) {
            queue.push_back(message);
        } else if message.due_ms.is_some_and(|due| due > now_ms()) {
            self.pause(&key);
            self.held.insert(key, VecDeque::from([message]));
        } else {
            permit.send(message);
        }
    }

    fn commit(&self, mode: CommitMode) {
        let commits = self.subscription.tracker.lock().take_commits();
        if commits.is_empty() {
            return;
        }
        if let Err(error) = self.consumer.commit(&commit_list(&commits), mode) {
            tracing::warn!(
                "committing offsets failed: {}",
                self.subscription.redactor.redact(error)
            );
        }
    }

    fn pause(&self, (topic, partition): &(Arc<str>, i32)) {
        if let Err(error) = self.consumer.pause(&one_partition(topic, *partition)) {
            tracing::warn!("pausing {topic}[{partition}] until a retry is due failed: {error}");
        }
    }

    fn resume(&self, (topic, partition): &(Arc<str>, i32)) {
        if let Err(error) = self.consumer.resume(&one_partition(topic, *partition)) {
            tracing::warn!("resuming {topic}[{partition}] failed: {error}");
        }
    }

    /// The earliest time a held message is due.
    fn next_due(&self) -> Option<u64> {
        self.held
            .values()
            .filter_map(|queue| queue.front().and_then(|message| message.due_ms))
            .min()
    }

    /// Hands out the held messages that are due, in order; resumes partitions whose
    /// queue empties. `false` once the subscriber is gone.
    async fn release_due(&mut self) -> bool {
        let now = now_ms();
        let mut emptied = Vec::new();
        let mut ready = Vec::new();
        for (key, queue) in &mut self.held {
            while queue
                .front()
                .is_some_and(|message| message.due_ms.is_none_or(|due| due <= now))
            {
                if let Some(message) = queue.pop_front() {
                    ready.push(message);
                }
            }
            if queue.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.held.remove(&key);
            self.resume(&key);
        }
        for message in ready {
            if self.sender.send(message).await.is_err() {
                return false;
            }
        }
        true
    }
}

async fn sleep_until_ms(due: Option<u64>) {
    let wait = due.map_or(0, |due| due.saturating_sub(now_ms()));
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

impl Subscriber for KafkaSubscriber {
    type Message = KafkaMessage;
    type Error = KafkaError;

    fn stream(&mut self) -> impl Stream<Item = Result<KafkaMessage, KafkaError>> + Send + '_ {
        futures::stream::poll_fn(move |cx| {
            let intake = &mut self.intake;
            self.batcher.poll_next(cx, |cx| intake.poll_message(cx))
        })
    }

    fn capabilities(&self) -> Capabilities {
        #[cfg(feature = "testing")]
        if let Intake::InProcess { subscribers, .. } = &self.intake {
            // Settlement is recorded, not performed: no requeue.
            return subscribers
                .first()
                .map_or(Capabilities::NONE, Subscriber::capabilities)
                .with_partition_key(true);
        }
        Capabilities::DEFAULT
            .with_requeue(true)
            .with_delayed_requeue(true)
            .with_redelivery_count(true)
            .with_headers(HeaderSupport::Binary)
            .with_partition_key(true)
    }
}

impl BatchSubscriber for KafkaSubscriber {
    fn batches(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<KafkaMessage>, KafkaError>> + Send + '_ {
        futures::stream::unfold(self, move |this| async move {
            let intake = &mut this.intake;
            let batch = this
                .batcher
                .next_batch(max_messages, max_wait, |cx| intake.poll_message(cx))
                .await?;
            Some((batch, this))
        })
    }
}
