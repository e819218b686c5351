//! [`MemoryBroker`]: a connection to an in-process server.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::envelope::Envelope;
use super::hub::{Hub, SubscriberSlot};
use super::message::Redelivery;
use super::{MemoryConfig, MemoryError, MemorySubscriber, MemoryTransaction};
use crate::matching::{DotSubjects, NameMatcher};
use crate::{
    Broker, DescribeServer, OutgoingMessage, Partitioned, Publisher, Reply, RequestReply,
    ServerSpec, Subscribe, TransactionalPublisher,
};

const NEW: u8 = 0;
const CONNECTED: u8 = 1;
const CLOSED: u8 = 2;

#[derive(Debug)]
struct Connection {
    state: AtomicU8,
    subscribers: Mutex<Vec<Weak<SubscriberSlot>>>,
}

/// The embedded broker: a real broker that lives in the process.
///
/// Subjects are dot-separated with `*` / `>` wildcards in subscriptions (as NATS). A plain
/// subscription receives every matching message (fan-out); subscriptions that share a
/// group compete for one queue (each message goes to one member), and the group's queue
/// outlives its members, so a member that resubscribes finds what was published and
/// left unsettled meanwhile. Queues are bounded: publishers wait for room.
///
/// A `MemoryBroker` is one connection. [`MemoryBroker::new`] starts a fresh server;
/// [`new_connection`](Self::new_connection) opens another connection to the same server,
/// as a second process would connect to the same NATS server. Clones share the connection.
///
/// ```
/// use ruststream::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let broker = MemoryBroker::new();
/// broker.connect().await?;
/// let mut orders = broker.subscribe("orders.*").await?;
/// broker.publish(OutgoingMessage::new("orders.created", b"{\"id\":1}")).await?;
///
/// let message = orders.next_message().await.expect("a message")?;
/// assert_eq!(message.payload(), b"{\"id\":1}");
/// message.ack().await?;
/// broker.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBroker {
    hub: Arc<Hub>,
    connection: Arc<Connection>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBroker {
    /// A connection to a new in-process server with the default [`MemoryConfig`].
    pub fn new() -> Self {
        Self::with_config(MemoryConfig::default())
    }

    /// A connection to a new in-process server with `config`.
    pub fn with_config(config: MemoryConfig) -> Self {
        Self::build(Box::new(DotSubjects), config, Redelivery::Enabled)
    }

    pub(crate) fn build(
        matcher: Box<dyn NameMatcher>,
        config: MemoryConfig,
        redelivery: Redelivery,
    ) -> Self {
        Self::attach(Arc::new(Hub::new(matcher, config, redelivery)))
    }

    fn attach(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            connection: Arc::new(Connection {
                state: AtomicU8::new(NEW),
                subscribers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Another, not yet connected, connection to the same in-process server.
    pub fn new_connection(&self) -> Self {
        Self::attach(Arc::clone(&self.hub))
    }

    /// Messages waiting in the server's queues: ready for delivery or scheduled for a
    /// delayed redelivery. Messages delivered and not yet settled are not counted.
    pub fn backlog(&self) -> usize {
        self.hub.backlog()
    }

    /// The server's settings.
    pub fn config(&self) -> &MemoryConfig {
        &self.hub.config
    }

    #[inline]
    fn check_open(&self) -> Result<(), MemoryError> {
        match self.connection.state.load(Ordering::Acquire) {
            CONNECTED => Ok(()),
            NEW => Err(MemoryError::NotConnected),
            _ => Err(MemoryError::Closed),
        }
    }

    /// Subscribes to `pattern`, alone (`group = None`) or as a member of a consumer group.
    pub(crate) fn open(
        &self,
        pattern: &str,
        group: Option<&str>,
    ) -> Result<MemorySubscriber, MemoryError> {
        self.check_open()?;
        let (key, queue) = self.hub.subscribe(pattern, group)?;
        let slot = Arc::new(SubscriberSlot::new(Arc::clone(&self.hub), key, queue));
        let mut subscribers = self
            .connection
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscribers.retain(|s| s.strong_count() > 0);
        subscribers.push(Arc::downgrade(&slot));
        Ok(MemorySubscriber::new(slot))
    }

    #[inline]
    fn check_size(&self, msg: &OutgoingMessage<'_>) -> Result<(), MemoryError> {
        let size = msg.payload().len();
        let limit = self.hub.config.max_payload;
        if size > limit {
            return Err(MemoryError::PayloadTooLarge {
                name: msg.name().to_owned(),
                size,
                limit,
            });
        }
        Ok(())
    }

    /// Checks a message against the server's rules and copies it, for a transaction.
    pub(crate) fn stage(&self, msg: &OutgoingMessage<'_>) -> Result<Envelope, MemoryError> {
        self.check_open()?;
        self.hub
            .matcher
            .validate_name(msg.name())
            .map_err(MemoryError::InvalidName)?;
        self.check_size(msg)?;
        Ok(Envelope::copy_of(msg))
    }

    pub(crate) fn commit(&self, staged: &[Envelope]) -> Result<(), MemoryError> {
        self.check_open()?;
        self.hub.publish_all(staged);
        Ok(())
    }
}

impl Broker for MemoryBroker {
    type Error = MemoryError;

    fn server(&self) -> Option<ServerSpec> {
        Some(self.describe_server())
    }

    async fn connect(&self) -> Result<(), MemoryError> {
        self.connection.state.store(CONNECTED, Ordering::Release);
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), MemoryError> {
        self.connection.state.store(CLOSED, Ordering::Release);
        let slots = std::mem::take(
            &mut *self
                .connection
                .subscribers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for slot in slots.iter().filter_map(Weak::upgrade) {
            slot.release();
        }
        Ok(())
    }
}

impl Subscribe for MemoryBroker {
    type Subscriber = MemorySubscriber;

    async fn subscribe(&self, name: &str) -> Result<MemorySubscriber, MemoryError> {
        self.open(name, None)
    }
}

impl Publisher for MemoryBroker {
    type Error = MemoryError;

    #[inline]
    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), MemoryError> {
        self.check_open()?;
        self.check_size(&msg)?;
        // The full queues come back through `full` rather than in the result: the common
        // case then moves a small result, not a large one, through the future's state.
        let mut full = None;
        self.hub
            .deliver(&msg, &mut full)
            .map_err(MemoryError::InvalidName)?;
        match full {
            None => Ok(()),
            Some(full) => self.hub.deliver_when_room(&msg, full).await,
        }
    }
}

impl RequestReply for MemoryBroker {
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, MemoryError> {
        self.check_open()?;
        if !self.hub.has_listener(msg.name()) {
            return Err(MemoryError::NoResponders(msg.name().to_owned()));
        }
        let inbox = format!("_INBOX.{}", self.hub.next_id());
        let mut replies = self.open(&inbox, None)?;
        self.publish(msg.with_reply_to(&inbox)).await?;
        match tokio::time::timeout(timeout, replies.next_message()).await {
            Ok(Some(reply)) => Ok(reply.into_reply()),
            Ok(None) => Err(MemoryError::Closed),
            Err(_) => Err(MemoryError::RequestTimeout {
                name: msg.name().to_owned(),
                timeout,
            }),
        }
    }
}

impl TransactionalPublisher for MemoryBroker {
    type Transaction = MemoryTransaction;

    async fn begin(&self) -> Result<MemoryTransaction, MemoryError> {
        self.check_open()?;
        Ok(MemoryTransaction::new(self.clone()))
    }
}

impl Partitioned for MemoryBroker {}

impl DescribeServer for MemoryBroker {
    fn describe_server(&self) -> ServerSpec {
        ServerSpec::new("memory", "in-process")
            .with_description("RustStream's embedded in-process broker")
    }
}
