//! A dummy broker written only from the broker-author contract (`writing-a-broker`).
//!
//! It is not meant to be used: it is the proof that a broker crate following the contract
//! word for word compiles against `ruststream` with default features off and works
//! through the traits. Every signature the contract shows is implemented here with a
//! plain `async fn`:
//!
//! - [`SeedBroker`]: [`Broker`] (`connect`, `shutdown`), [`Subscribe`], [`Publisher`] and
//!   every capability trait ([`TransactionalPublisher`], [`RequestReply`],
//!   [`Partitioned`], [`DescribeServer`]);
//! - [`SeedSubscriber`]: [`Subscriber::stream`] and [`BatchSubscriber`];
//! - [`SeedMessage`]: [`IncomingMessage`] with only its required methods, so every
//!   defaulted method (`nack_after`, `partition_key`...) keeps its default;
//! - [`SeedSource`]: a [`SubscriptionSource`] descriptor with an associated constructor and
//!   a builder method returning `Self`;
//! - [`SeedConfig`]: no `Default`, because its URL has no sane default;
//! - [`SeedError`]: one `thiserror` enum, `#[non_exhaustive]`.
//!
//! The "server" is a table of in-process channels. Names match exactly (no wildcards);
//! plain subscriptions fan out; subscriptions that share a group take turns.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use ruststream::{
    AckError, BatchSubscriber, Broker, DescribeServer, Headers, IncomingMessage, OutgoingMessage,
    Partitioned, Publisher, Reply, RequestReply, ServerSpec, Subscribe, Subscriber,
    SubscriptionSource, Transaction, TransactionalPublisher,
};

/// The header a request carries its reply address in.
///
/// [`SeedMessage`] implements only the required methods of [`IncomingMessage`], so
/// `reply_to()` keeps its default (`None`); a responder reads this header instead.
pub const REPLY_TO_HEADER: &str = "seed-reply-to";

/// Settings of a [`SeedBroker`].
///
/// There is deliberately no `Default`: the server URL has no sane default, so the user
/// must give one ([`SeedConfig::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SeedConfig {
    /// The server, as `seed://[user:password@]host[:port]`. Required.
    pub url: String,
    /// A name the client reports to the server. Optional.
    pub client_name: Option<String>,
}

impl SeedConfig {
    /// Settings for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client_name: None,
        }
    }

    /// Sets the client name.
    #[must_use]
    pub fn with_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }
}

/// Every error of the seed broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The configured URL is not a `seed://` URL with a host.
    #[error("invalid URL `{0}`: expected `seed://host[:port]`")]
    InvalidUrl(String),
    /// The broker was used before `connect()`.
    #[error("the seed broker is not connected: call `connect()` first")]
    NotConnected,
    /// The broker was used after `shutdown()`.
    #[error("the seed broker was shut down")]
    Closed,
    /// A request to a name nobody subscribes to.
    #[error("no subscriber for a request to `{0}`")]
    NoResponders(String),
    /// A request nobody answered in time.
    #[error("a request to `{name}` got no reply within {timeout:?}")]
    RequestTimeout {
        /// The destination of the request.
        name: String,
        /// The timeout given.
        timeout: Duration,
    },
}

/// How many messages were settled, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settlements {
    /// `ack()`.
    pub acked: u64,
    /// `nack(true)` (and the default `nack_after`).
    pub requeued: u64,
    /// `nack(false)`.
    pub dropped: u64,
}

/// One message as the server keeps it.
#[derive(Debug, Clone)]
struct Delivery {
    name: String,
    payload: Vec<u8>,
    headers: Headers,
}

impl Delivery {
    fn from_outgoing(msg: &OutgoingMessage<'_>) -> Self {
        Self {
            name: msg.name().to_owned(),
            payload: msg.payload().to_vec(),
            headers: msg.headers().clone(),
        }
    }
}

#[derive(Debug)]
struct Subscription {
    name: String,
    group: Option<String>,
    sender: UnboundedSender<Delivery>,
}

#[derive(Debug, Default)]
struct State {
    connected: bool,
    closed: bool,
    subscriptions: BTreeMap<u64, Subscription>,
    /// The next member of each group, by (name, group).
    turns: HashMap<(String, String), usize>,
    next_id: u64,
}

impl State {
    fn check_open(&self) -> Result<(), SeedError> {
        if self.closed {
            Err(SeedError::Closed)
        } else if !self.connected {
            Err(SeedError::NotConnected)
        } else {
            Ok(())
        }
    }

    /// Hands a delivery to every plain subscription of its name and to one member of each
    /// group subscribed to it. A name nobody subscribes to drops the message.
    fn route(&mut self, delivery: &Delivery) {
        let mut groups: BTreeMap<&str, Vec<&UnboundedSender<Delivery>>> = BTreeMap::new();
        for subscription in self.subscriptions.values() {
            if subscription.name != delivery.name {
                continue;
            }
            match &subscription.group {
                None => {
                    // A subscriber that went away is removed by its own Drop.
                    let _ = subscription.sender.unbounded_send(delivery.clone());
                }
                Some(group) => groups.entry(group).or_default().push(&subscription.sender),
            }
        }
        for (group, members) in groups {
            let turn = self
                .turns
                .entry((delivery.name.clone(), group.to_owned()))
                .or_default();
            let member = members[*turn % members.len()];
            *turn = turn.wrapping_add(1);
            let _ = member.unbounded_send(delivery.clone());
        }
    }

    fn has_subscriber(&self, name: &str) -> bool {
        self.subscriptions.values().any(|s| s.name == name)
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    acked: AtomicU64,
    requeued: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The dummy broker: one connection to an in-process "server". Clones share it.
#[derive(Debug, Clone)]
pub struct SeedBroker {
    config: SeedConfig,
    shared: Arc<Shared>,
}

impl SeedBroker {
    /// A broker that will connect with `config`. Nothing happens until `connect()`.
    pub fn new(config: SeedConfig) -> Self {
        Self {
            config,
            shared: Arc::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SeedConfig {
        &self.config
    }

    /// How many messages were settled so far, and how.
    pub fn settlements(&self) -> Settlements {
        Settlements {
            acked: self.shared.acked.load(Ordering::Relaxed),
            requeued: self.shared.requeued.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    fn open(&self, name: &str, group: Option<&str>) -> Result<SeedSubscriber, SeedError> {
        let mut state = self.shared.lock();
        state.check_open()?;
        let id = state.next_id;
        state.next_id += 1;
        let (sender, receiver) = unbounded();
        state.subscriptions.insert(
            id,
            Subscription {
                name: name.to_owned(),
                group: group.map(str::to_owned),
                sender,
            },
        );
        Ok(SeedSubscriber {
            id,
            receiver,
            shared: Arc::clone(&self.shared),
        })
    }

    fn valid_url(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("seed://") else {
            return false;
        };
        let authority = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        !authority.is_empty() && !authority.starts_with(':')
    }
}

impl Broker for SeedBroker {
    type Error = SeedError;

    async fn connect(&self) -> Result<(), SeedError> {
        if !Self::valid_url(&self.config.url) {
            // The URL may hold a password: report only what the description keeps.
            let spec = ServerSpec::from_url(None, &self.config.url);
            return Err(SeedError::InvalidUrl(format!(
                "{}://{}",
                spec.protocol, spec.host
            )));
        }
        let mut state = self.shared.lock();
        state.connected = true;
        state.closed = false;
        Ok(())
    }

    /// The [`DescribeServer`] capability, where the runtime looks for it.
    fn server(&self) -> Option<ServerSpec> {
        Some(self.describe_server())
    }

    async fn shutdown(&self) -> Result<(), SeedError> {
        let mut state = self.shared.lock();
        state.closed = true;
        // Dropping the senders ends every subscriber's stream once it is drained.
        state.subscriptions.clear();
        Ok(())
    }
}

impl Subscribe for SeedBroker {
    type Subscriber = SeedSubscriber;

    async fn subscribe(&self, name: &str) -> Result<SeedSubscriber, SeedError> {
        self.open(name, None)
    }
}

impl Publisher for SeedBroker {
    type Error = SeedError;

    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), SeedError> {
        let mut state = self.shared.lock();
        state.check_open()?;
        state.route(&Delivery::from_outgoing(&msg));
        Ok(())
    }
}

/// The seed broker's subscription descriptor: a name, alone or in a consumer group.
///
/// ```
/// use ruststream_seed_broker::SeedSource;
/// let source = SeedSource::new("orders").group("workers");
/// assert_eq!(source.group_name(), Some("workers"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSource {
    name: String,
    group: Option<String>,
}

impl SeedSource {
    /// A plain (fan-out) subscription to `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            group: None,
        }
    }

    /// Joins the consumer group `group`: its members take turns, one message each.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The consumer group, if any.
    pub fn group_name(&self) -> Option<&str> {
        self.group.as_deref()
    }
}

impl SubscriptionSource<SeedBroker> for SeedSource {
    type Subscriber = SeedSubscriber;

    fn name(&self) -> &str {
        &self.name
    }

    async fn subscribe(self, broker: &SeedBroker) -> Result<SeedSubscriber, SeedError> {
        broker.open(&self.name, self.group.as_deref())
    }
}

/// An open subscription. Dropping it unsubscribes.
#[derive(Debug)]
pub struct SeedSubscriber {
    id: u64,
    receiver: UnboundedReceiver<Delivery>,
    shared: Arc<Shared>,
}

impl Drop for SeedSubscriber {
    fn drop(&mut self) {
        self.shared.lock().subscriptions.remove(&self.id);
    }
}

impl Subscriber for SeedSubscriber {
    type Message = SeedMessage;
    type Error = SeedError;

    fn stream(&mut self) -> impl Stream<Item = Result<SeedMessage, SeedError>> + Send + '_ {
        let shared = &self.shared;
        let id = self.id;
        // The receiver keeps whatever is buffered, so dropping this stream loses nothing.
        (&mut self.receiver).map(move |delivery| {
            Ok(SeedMessage {
                delivery,
                subscription: id,
                shared: Arc::clone(shared),
            })
        })
    }
}

impl BatchSubscriber for SeedSubscriber {
    /// Yields whatever is ready, up to `max_messages`, without waiting for more: a batch
    /// never waits the whole `max_wait`, which is allowed (it is an upper bound).
    fn batches(
        &mut self,
        max_messages: usize,
        _max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<SeedMessage>, SeedError>> + Send + '_ {
        self.stream()
            .ready_chunks(max_messages.max(1))
            .map(|batch| batch.into_iter().collect())
    }
}

/// A delivered message. Only the required methods of [`IncomingMessage`] are implemented.
#[derive(Debug)]
pub struct SeedMessage {
    delivery: Delivery,
    subscription: u64,
    shared: Arc<Shared>,
}

impl IncomingMessage for SeedMessage {
    fn payload(&self) -> &[u8] {
        &self.delivery.payload
    }

    fn headers(&self) -> &Headers {
        &self.delivery.headers
    }

    async fn ack(self) -> Result<(), AckError> {
        self.shared.acked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        if !requeue {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let state = self.shared.lock();
        let subscription = state
            .subscriptions
            .get(&self.subscription)
            .ok_or(AckError::Closed)?;
        subscription
            .sender
            .unbounded_send(self.delivery.clone())
            .map_err(|_| AckError::Closed)?;
        self.shared.requeued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// An open transaction: publishes are held until `commit` routes them together.
#[derive(Debug)]
pub struct SeedTransaction {
    broker: SeedBroker,
    staged: Vec<Delivery>,
}

impl TransactionalPublisher for SeedBroker {
    type Transaction = SeedTransaction;

    async fn begin(&self) -> Result<SeedTransaction, SeedError> {
        self.shared.lock().check_open()?;
        Ok(SeedTransaction {
            broker: self.clone(),
            staged: Vec::new(),
        })
    }
}

impl Transaction for SeedTransaction {
    type Error = SeedError;

    async fn publish(&mut self, msg: OutgoingMessage<'_>) -> Result<(), SeedError> {
        self.broker.shared.lock().check_open()?;
        self.staged.push(Delivery::from_outgoing(&msg));
        Ok(())
    }

    async fn commit(self) -> Result<(), SeedError> {
        let mut state = self.broker.shared.lock();
        state.check_open()?;
        for delivery in &self.staged {
            state.route(delivery);
        }
        Ok(())
    }

    async fn abort(self) -> Result<(), SeedError> {
        Ok(())
    }
}

impl RequestReply for SeedBroker {
    /// Publishes the request with its reply address in [`REPLY_TO_HEADER`] and waits for
    /// the first message published there.
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, SeedError> {
        let inbox = {
            let mut state = self.shared.lock();
            state.check_open()?;
            if !state.has_subscriber(msg.name()) {
                return Err(SeedError::NoResponders(msg.name().to_owned()));
            }
            state.next_id += 1;
            format!("_inbox.{}", state.next_id)
        };
        let mut replies = self.open(&inbox, None)?;
        let mut headers = msg.headers().clone();
        headers.insert(REPLY_TO_HEADER, inbox.into_bytes());
        self.publish(msg.with_headers(&headers)).await?;
        match tokio::time::timeout(timeout, replies.receiver.next()).await {
            Ok(Some(reply)) => Ok(Reply {
                payload: reply.payload.into(),
                headers: reply.headers,
            }),
            Ok(None) => Err(SeedError::Closed),
            Err(_) => Err(SeedError::RequestTimeout {
                name: msg.name().to_owned(),
                timeout,
            }),
        }
    }
}

/// Order is kept per subscriber (each has one FIFO channel), so messages with the same
/// key stay in order. The key is not carried to the consumer: [`SeedMessage`] keeps the
/// default `partition_key() == None`, and the runtime's keyed lanes rotate its messages.
impl Partitioned for SeedBroker {}

impl DescribeServer for SeedBroker {
    fn describe_server(&self) -> ServerSpec {
        ServerSpec::from_url(Some("seed"), &self.config.url)
            .with_description("the seed broker: a dummy written from the broker contract")
    }
}
