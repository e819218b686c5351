//! [`RedisSource`]: the one descriptor for every Redis subscription kind.

use std::time::Duration;

use ruststream::SubscriptionSource;

use crate::{RedisBroker, RedisError, RedisSubscriber};

/// What a [`RedisSource`] subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A Pub/Sub channel (`SUBSCRIBE`): at most once.
    Channel,
    /// Pub/Sub channels matching a glob pattern (`PSUBSCRIBE`): at most once.
    Pattern,
    /// A list used as a reliable queue (`BLMOVE` into an in-flight list).
    List,
    /// A stream, with a consumer group (`XREADGROUP`) or without (`XREAD`).
    Stream,
}

/// Where a stream consumer group (or a group-less stream reader) starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartFrom {
    /// Entries added after the group was created (`$`). The default.
    New,
    /// Every entry the stream holds (`0`).
    Beginning,
    /// Entries after this id.
    Id(String),
}

impl StartFrom {
    pub(crate) fn as_id(&self) -> &str {
        match self {
            Self::New => "$",
            Self::Beginning => "0",
            Self::Id(id) => id,
        }
    }
}

/// A Redis subscription: `RedisSource::channel("events")`,
/// `RedisSource::pattern("events.*")`, `RedisSource::list("jobs")` or
/// `RedisSource::stream("orders").group("billing").consumer("billing-1")`, with builder
/// methods returning `Self`, so it fits the decorator:
/// `#[subscriber(RedisSource::stream("orders").group("billing"))]`.
///
/// | kind | guarantee | requeue | delayed retry | redelivery count | headers |
/// |---|---|---|---|---|---|
/// | channel, pattern | at most once | no | no | no | text, in the envelope |
/// | list | at least once | yes | yes (sorted set) | no | text, in the envelope |
/// | stream + group | at least once | yes | yes (pending entry reclaim) | yes | binary, as entry fields |
/// | stream, no group | at most once | no | no | no | binary, as entry fields |
#[derive(Debug, Clone)]
pub struct RedisSource {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) group: Option<String>,
    pub(crate) consumer: Option<String>,
    pub(crate) count: usize,
    pub(crate) block: Duration,
    pub(crate) claim_idle: Duration,
    pub(crate) max_deliver: Option<u32>,
    pub(crate) dead_letter: Option<String>,
    pub(crate) start: StartFrom,
    pub(crate) visibility_timeout: Duration,
}

impl RedisSource {
    fn new(name: impl Into<String>, kind: Kind) -> Self {
        Self {
            name: name.into(),
            kind,
            group: None,
            consumer: None,
            count: 10,
            block: Duration::from_secs(1),
            claim_idle: Duration::from_secs(30),
            max_deliver: None,
            dead_letter: None,
            start: StartFrom::New,
            visibility_timeout: Duration::from_secs(30),
        }
    }

    /// A Pub/Sub channel: every subscriber gets every message published while it is
    /// subscribed; nothing is kept for one that is not.
    pub fn channel(name: impl Into<String>) -> Self {
        Self::new(name, Kind::Channel)
    }

    /// Pub/Sub channels matching a Redis glob pattern (`*`, `?`, `[abc]`, `\` escapes).
    pub fn pattern(pattern: impl Into<String>) -> Self {
        Self::new(pattern, Kind::Pattern)
    }

    /// A list as a reliable queue: each element goes to one consumer, moved atomically
    /// into that consumer's in-flight list until it is settled; the in-flight list of a
    /// consumer that stopped beating for `visibility_timeout` is moved back.
    pub fn list(name: impl Into<String>) -> Self {
        Self::new(name, Kind::List)
    }

    /// A stream; add [`group`](Self::group) for a consumer group (acks, redelivery,
    /// competing consumers), else every subscriber reads every entry, at most once.
    pub fn stream(name: impl Into<String>) -> Self {
        Self::new(name, Kind::Stream)
    }

    /// The consumer group of a stream (created with `MKSTREAM` if missing).
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// This consumer's name in its group (stream) or among the list's consumers. It must
    /// be unique among live consumers; a consumer that restarts under the same name takes
    /// back its own pending work at once. Default: a random name per subscription.
    #[must_use]
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = Some(consumer.into());
        self
    }

    /// How many stream entries one read asks for (`COUNT`), the upper bound of what is
    /// fetched ahead. Default: 10.
    #[must_use]
    pub fn count(mut self, count: usize) -> Self {
        self.count = count.max(1);
        self
    }

    /// How long one blocking read waits before the subscription looks at its
    /// housekeeping (claims, due messages, heartbeat). Default: 1 s.
    #[must_use]
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(10));
        self
    }

    /// How long a stream entry stays pending with a consumer that stopped before another
    /// consumer of the group claims it (`XAUTOCLAIM`). A live subscription keeps the
    /// entries it holds (and those it retries later) from going idle, so this need not
    /// exceed a handler's time. Default: 30 s.
    #[must_use]
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle;
        self
    }

    /// After this many deliveries, a stream entry goes to the dead-letter stream (see
    /// [`dead_letter`](Self::dead_letter)) and is acked, instead of being delivered
    /// again. Default: unlimited.
    #[must_use]
    pub fn max_deliver(mut self, deliveries: u32) -> Self {
        self.max_deliver = Some(deliveries.max(1));
        self
    }

    /// The stream that receives entries past `max_deliver`. Default: `<stream>:dlq`.
    #[must_use]
    pub fn dead_letter(mut self, stream: impl Into<String>) -> Self {
        self.dead_letter = Some(stream.into());
        self
    }

    /// Where a new consumer group (or a group-less reader) starts. Default:
    /// [`StartFrom::New`].
    #[must_use]
    pub fn start(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// How long a list consumer may miss its heartbeat before another consumer moves
    /// its in-flight messages back to the list. Default: 30 s.
    #[must_use]
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// The kind of subscription.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn start_id(&self) -> &str {
        self.start.as_id()
    }

    /// Opens the subscription; it is active when this returns.
    pub async fn open(self, broker: &RedisBroker) -> Result<RedisSubscriber, RedisError> {
        crate::subscriber::open(self, broker).await
    }
}

impl SubscriptionSource<RedisBroker> for RedisSource {
    type Subscriber = RedisSubscriber;

    fn name(&self) -> &str {
        &self.name
    }

    async fn subscribe(self, broker: &RedisBroker) -> Result<RedisSubscriber, RedisError> {
        self.open(broker).await
    }

    fn with_prefix(mut self, prefix: &str) -> Result<Self, Self> {
        self.name.insert_str(0, prefix);
        Ok(self)
    }

    fn operation_bindings(&self) -> Option<serde_json::Value> {
        crate::asyncapi::operation_bindings(self)
    }
}
