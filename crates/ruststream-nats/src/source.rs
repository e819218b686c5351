//! [`NatsSource`]: the one descriptor for every NATS subscription kind.
//!
//! | written | subscribes to |
//! |---|---|
//! | `NatsSource::new("orders.*")` | a core subject (wildcards allowed): every message, to this subscriber |
//! | `NatsSource::new("orders.*").queue_group("workers")` | a core subject in a queue group: each message to one member |
//! | `NatsSource::new("orders.created").stream("ORDERS").durable("billing")` | a JetStream durable pull consumer on stream `ORDERS` (created if missing), explicit acks |
//! | `NatsSource::new("orders.created").stream("ORDERS")` | a JetStream ephemeral pull consumer (the server removes it once unused) |
//! | `NatsSource::new("orders.created").durable("billing")` | a durable consumer on whichever stream captures the subject |

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use ruststream::SubscriptionSource;
use ruststream::matching::{DotSubjects, NameMatcher};

use crate::broker::NatsBroker;
use crate::error::NatsError;
use crate::subscriber::NatsSubscriber;

/// The default number of messages a JetStream subscriber asks the server for at once.
pub const DEFAULT_BATCH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
struct JetStreamOptions {
    stream: Option<String>,
    stream_subjects: Vec<String>,
    durable: Option<String>,
    ack_wait: Option<Duration>,
    max_deliver: Option<i64>,
    deliver_new: bool,
}

/// What to subscribe to on NATS, with its options: a core subject (optionally in a queue
/// group) or a JetStream pull consumer. Every builder method returns `Self`, so it can be
/// written in the attribute:
///
/// ```
/// use std::time::Duration;
/// use ruststream_nats::NatsSource;
///
/// let core = NatsSource::new("orders.*").queue_group("workers");
/// assert!(!core.is_jetstream());
///
/// let durable = NatsSource::new("orders.created")
///     .stream("ORDERS")
///     .durable("billing")
///     .ack_wait(Duration::from_secs(30))
///     .max_deliver(5);
/// assert!(durable.is_jetstream());
/// assert_eq!(durable.durable_name(), Some("billing"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSource {
    subject: String,
    queue_group: Option<String>,
    jetstream: Option<JetStreamOptions>,
    batch: usize,
}

impl NatsSource {
    /// A core subscription to `subject` (`*` matches one token, `>` the rest).
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            queue_group: None,
            jetstream: None,
            batch: DEFAULT_BATCH,
        }
    }

    fn js(&mut self) -> &mut JetStreamOptions {
        self.jetstream.get_or_insert_with(|| JetStreamOptions {
            stream: None,
            stream_subjects: Vec::new(),
            durable: None,
            ack_wait: None,
            max_deliver: None,
            deliver_new: false,
        })
    }

    /// Joins the queue group `group` (core subjects): each message goes to one member.
    #[must_use]
    pub fn queue_group(mut self, group: impl Into<String>) -> Self {
        self.queue_group = Some(group.into());
        self
    }

    /// Consumes through JetStream from the stream `name`, creating it (capturing the
    /// subject, or [`stream_subjects`](Self::stream_subjects)) if it does not exist.
    #[must_use]
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.js().stream = Some(name.into());
        self
    }

    /// The subjects a stream created by this source captures (default: the subject).
    #[must_use]
    pub fn stream_subjects<I, S>(mut self, subjects: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.js().stream_subjects = subjects.into_iter().map(Into::into).collect();
        self
    }

    /// Consumes through the JetStream durable pull consumer `name` (created if missing,
    /// bound if it exists): it keeps its position across restarts, and every subscriber
    /// with the same durable name shares its messages.
    #[must_use]
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.js().durable = Some(name.into());
        self
    }

    /// How long the server waits for an ack before redelivering (JetStream; the
    /// server's default is 30 s). Applies when the consumer is created.
    #[must_use]
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.js().ack_wait = Some(wait);
        self
    }

    /// How many times a message is delivered at most (JetStream; default unlimited).
    /// Applies when the consumer is created.
    #[must_use]
    pub fn max_deliver(mut self, max: i64) -> Self {
        self.js().max_deliver = Some(max);
        self
    }

    /// Starts a new consumer at the messages published after it is created, instead of
    /// at the start of the stream (JetStream).
    #[must_use]
    pub fn deliver_new(mut self) -> Self {
        self.js().deliver_new = true;
        self
    }

    /// How many messages a JetStream subscriber asks for at once (default
    /// [`DEFAULT_BATCH`]).
    #[must_use]
    pub fn batch(mut self, messages: usize) -> Self {
        self.batch = messages.max(1);
        self
    }

    /// The subject (pattern) subscribed to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The queue group, if any.
    pub fn queue_group_name(&self) -> Option<&str> {
        self.queue_group.as_deref()
    }

    /// Whether this is a JetStream consumer.
    pub fn is_jetstream(&self) -> bool {
        self.jetstream.is_some()
    }

    /// The JetStream stream name, if given.
    pub fn stream_name(&self) -> Option<&str> {
        self.jetstream.as_ref()?.stream.as_deref()
    }

    /// The JetStream durable consumer name, if any.
    pub fn durable_name(&self) -> Option<&str> {
        self.jetstream.as_ref()?.durable.as_deref()
    }

    /// The group its subscribers share, whichever kind: the queue group or the durable
    /// consumer.
    pub fn group_name(&self) -> Option<&str> {
        self.queue_group_name().or(self.durable_name())
    }

    /// The AsyncAPI operation bindings of this subscription (`nats.queue` for a queue
    /// group), if it has any.
    pub fn operation_bindings(&self) -> Option<serde_json::Value> {
        crate::asyncapi::operation_bindings(self)
    }

    fn check(&self) -> Result<(), NatsError> {
        DotSubjects
            .validate_pattern(&self.subject)
            .map_err(NatsError::Subject)?;
        if let Some(group) = &self.queue_group {
            if group.is_empty() || group.chars().any(char::is_whitespace) {
                return Err(NatsError::Config(format!(
                    "queue group `{group}` is not valid: give a non-empty name without whitespace"
                )));
            }
            if self.jetstream.is_some() {
                return Err(NatsError::Config(format!(
                    "subject `{}`: a queue group is for core subjects; JetStream subscribers share a consumer through `.durable(name)` instead",
                    self.subject
                )));
            }
        }
        Ok(())
    }

    /// Opens the subscription on `broker`; returns once it is active on the server.
    pub(crate) async fn open(self, broker: &NatsBroker) -> Result<NatsSubscriber, NatsError> {
        self.check()?;
        #[cfg(feature = "testing")]
        if let Some(router) = &broker.inner.in_process {
            return broker.subscribe_in_process(router, self).await;
        }
        let Some(options) = self.jetstream else {
            return self.open_core(broker).await;
        };
        open_jetstream(broker, self.subject, options, self.batch).await
    }

    async fn open_core(self, broker: &NatsBroker) -> Result<NatsSubscriber, NatsError> {
        let client = broker.client()?;
        let subject = self.subject;
        let subscribed = match &self.queue_group {
            Some(group) => client.queue_subscribe(subject.clone(), group.clone()).await,
            None => client.subscribe(subject.clone()).await,
        };
        let subscription = subscribed.map_err(|error| NatsError::Subscribe {
            subject: subject.clone(),
            reason: broker.redact(error),
        })?;
        // Active once the server has processed the SUB.
        broker.round_trip().await?;
        Ok(NatsSubscriber::core(broker, subject, subscription))
    }
}

async fn open_jetstream(
    broker: &NatsBroker,
    subject: String,
    options: JetStreamOptions,
    batch: usize,
) -> Result<NatsSubscriber, NatsError> {
    let context = broker.jetstream()?;
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        NatsError::JetStream(format!("{what} for `{subject}`: {}", broker.redact(error)))
    };
    let stream = match &options.stream {
        Some(name) => {
            let subjects = if options.stream_subjects.is_empty() {
                vec![subject.clone()]
            } else {
                options.stream_subjects.clone()
            };
            context
                .get_or_create_stream(stream::Config {
                    name: name.clone(),
                    subjects,
                    ..Default::default()
                })
                .await
                .map_err(|e| failed(&format!("creating or binding stream `{name}`"), &e))?
        }
        None => {
            let name = context.stream_by_subject(subject.clone()).await.map_err(|e| {
                NatsError::JetStream(format!(
                    "no stream captures `{subject}` ({}); name one with `.stream(\"NAME\")` and it is created",
                    broker.redact(e)
                ))
            })?;
            context
                .get_stream(&name)
                .await
                .map_err(|e| failed(&format!("binding stream `{name}`"), &e))?
        }
    };
    let mut config = pull::Config {
        durable_name: options.durable.clone(),
        filter_subject: subject.clone(),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: if options.deliver_new {
            DeliverPolicy::New
        } else {
            DeliverPolicy::All
        },
        ..Default::default()
    };
    if let Some(wait) = options.ack_wait {
        config.ack_wait = wait;
    }
    if let Some(max) = options.max_deliver {
        config.max_deliver = max;
    }
    let consumer: jetstream::consumer::Consumer<pull::Config> = match &options.durable {
        Some(durable) => stream
            .get_or_create_consumer(durable, config)
            .await
            .map_err(|e| failed(&format!("creating or binding consumer `{durable}`"), &e))?,
        None => stream
            .create_consumer(config)
            .await
            .map_err(|e| failed("creating an ephemeral consumer", &e))?,
    };
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await
        .map_err(|e| failed("pulling messages", &e))?;
    let client = broker.client()?.clone();
    Ok(NatsSubscriber::jetstream(broker, client, subject, messages))
}

impl SubscriptionSource<NatsBroker> for NatsSource {
    type Subscriber = NatsSubscriber;

    fn name(&self) -> &str {
        &self.subject
    }

    async fn subscribe(self, broker: &NatsBroker) -> Result<NatsSubscriber, NatsError> {
        self.open(broker).await
    }

    /// A router's prefix goes in front of the subject (`"orders."` + `"created"`); the
    /// queue group, stream and durable name stay as written.
    fn with_prefix(mut self, prefix: &str) -> Result<Self, Self> {
        self.subject.insert_str(0, prefix);
        Ok(self)
    }

    fn operation_bindings(&self) -> Option<serde_json::Value> {
        NatsSource::operation_bindings(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_methods_keep_every_option() {
        let source = NatsSource::new("orders.>")
            .stream("ORDERS")
            .stream_subjects(["orders.>"])
            .durable("billing")
            .ack_wait(Duration::from_secs(3))
            .max_deliver(4)
            .batch(10);
        assert_eq!(source.subject(), "orders.>");
        assert_eq!(source.stream_name(), Some("ORDERS"));
        assert_eq!(source.group_name(), Some("billing"));
        assert!(source.is_jetstream());
        assert!(source.check().is_ok());
    }

    #[test]
    fn the_prefix_goes_before_the_subject_only() {
        let source = SubscriptionSource::<NatsBroker>::with_prefix(
            NatsSource::new("created").queue_group("workers"),
            "orders.",
        )
        .expect("a NATS source takes a prefix");
        assert_eq!(source.subject(), "orders.created");
        assert_eq!(source.queue_group_name(), Some("workers"));
    }

    #[test]
    fn misuse_is_explained() {
        let both = NatsSource::new("a").queue_group("g").durable("d");
        assert!(
            both.check()
                .unwrap_err()
                .to_string()
                .contains(".durable(name)")
        );
        let bad = NatsSource::new("a.>.b");
        assert!(bad.check().unwrap_err().to_string().contains("last"));
        let group = NatsSource::new("a").queue_group("two words");
        assert!(group.check().is_err());
    }
}
