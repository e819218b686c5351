//! [`TestClient`]: in-process routing for every broker's test client.
//!
//! A [`TestClient`] does core routing only: it delivers each published message to the
//! subscriptions whose pattern matches under the broker's own [`NameMatcher`], fans out
//! to plain subscriptions and hands one copy to each consumer group. Settlement is a
//! no-op: nothing is redelivered, there are no durable cursors, timers or offsets.
//! Those broker-specific behaviours are verified end to end against a real server.
//!
//! Its subscriptions say so: their [`Capabilities`] declare no requeue and no redelivery
//! count. A retry the handler asks for is recorded (a test can assert it) and not
//! performed.
//!
//! A broker crate wraps it with its own rule and descriptor:
//!
//! ```
//! use ruststream::matching::DotSubjects;
//! use ruststream::prelude::*;
//! use ruststream::testing::TestClient;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = TestClient::new(DotSubjects);
//! client.connect().await?;
//! let mut sub = client.subscribe_to("orders.*", Some("workers")).await?;
//! client.publish(OutgoingMessage::new("orders.eu", b"x")).await?;
//! let message = sub.next_message().await.expect("routed")?;
//! assert_eq!(message.name(), Some("orders.eu"));
//! message.nack(true).await?; // a no-op here: not redelivered
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::time::Duration;

use futures::{Stream, StreamExt as _};

use crate::matching::NameMatcher;
use crate::memory::{
    MemoryBroker, MemoryConfig, MemoryError, MemoryMessage, MemorySource, MemorySubscriber,
    Redelivery,
};
use crate::{
    AckError, BatchSubscriber, Broker, Capabilities, DescribeServer, Headers, IncomingMessage,
    OutgoingMessage, Publisher, Reply, RequestReply, ServerSpec, Subscribe, Subscriber,
    SubscriptionSource,
};

/// An in-process stand-in for a broker, routing by the broker's own name rule.
#[derive(Debug, Clone)]
pub struct TestClient {
    inner: MemoryBroker,
    /// What [`DescribeServer`] reports; `None` for the in-process default.
    server: Option<std::sync::Arc<ServerSpec>>,
}

impl TestClient {
    /// A client routing names with `matcher`.
    pub fn new(matcher: impl NameMatcher) -> Self {
        Self::with_config(matcher, MemoryConfig::default())
    }

    /// A client routing names with `matcher`, with queue and payload limits from `config`.
    pub fn with_config(matcher: impl NameMatcher, config: MemoryConfig) -> Self {
        Self {
            inner: MemoryBroker::build(Box::new(matcher), config, Redelivery::Disabled),
            server: None,
        }
    }

    /// Describes itself (for AsyncAPI) as `server`: a broker crate's test client says what
    /// its real broker would. Default: an `in-process` server of protocol `memory`.
    #[must_use]
    pub fn with_server(mut self, server: ServerSpec) -> Self {
        self.server = Some(std::sync::Arc::new(server));
        self
    }

    /// Messages routed and not yet delivered to a subscriber.
    pub fn backlog(&self) -> usize {
        self.inner.backlog()
    }

    /// Subscribes to `pattern`, alone or in a consumer group: what a broker crate's
    /// descriptor maps onto.
    pub async fn subscribe_to(
        &self,
        pattern: &str,
        group: Option<&str>,
    ) -> Result<TestSubscriber, MemoryError> {
        self.inner.open(pattern, group).map(TestSubscriber)
    }
}

impl Broker for TestClient {
    type Error = MemoryError;

    fn server(&self) -> Option<ServerSpec> {
        Some(self.describe_server())
    }

    async fn connect(&self) -> Result<(), MemoryError> {
        self.inner.connect().await
    }

    async fn shutdown(&self) -> Result<(), MemoryError> {
        self.inner.shutdown().await
    }
}

impl DescribeServer for TestClient {
    fn describe_server(&self) -> ServerSpec {
        match &self.server {
            Some(server) => ServerSpec::clone(server),
            None => ServerSpec::new("memory", "in-process")
                .with_description("RustStream's in-process test client"),
        }
    }
}

impl Subscribe for TestClient {
    type Subscriber = TestSubscriber;

    async fn subscribe(&self, name: &str) -> Result<TestSubscriber, MemoryError> {
        self.subscribe_to(name, None).await
    }
}

impl Publisher for TestClient {
    type Error = MemoryError;

    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), MemoryError> {
        self.inner.publish(msg).await
    }
}

impl RequestReply for TestClient {
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, MemoryError> {
        self.inner.request(msg, timeout).await
    }
}

impl SubscriptionSource<TestClient> for MemorySource {
    type Subscriber = TestSubscriber;

    fn name(&self) -> &str {
        self.pattern()
    }

    async fn subscribe(self, client: &TestClient) -> Result<TestSubscriber, MemoryError> {
        client.subscribe_to(self.pattern(), self.group_name()).await
    }

    fn with_prefix(self, prefix: &str) -> Result<Self, Self> {
        Ok(self.prefixed(prefix))
    }
}

/// An open [`TestClient`] subscription. Dropping it leaves the subscription (a group
/// keeps its queue for the members that remain or come back).
#[derive(Debug)]
pub struct TestSubscriber(MemorySubscriber);

impl Subscriber for TestSubscriber {
    type Message = TestMessage;
    /// Never fails, as the memory broker's stream (see [`MemorySubscriber`]).
    type Error = Infallible;

    fn stream(&mut self) -> impl Stream<Item = Result<TestMessage, Infallible>> + Send + '_ {
        self.0.stream().map(|message| message.map(TestMessage))
    }

    /// Headers and keys; no requeue, delay or redelivery count (settling is recorded, not
    /// performed).
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

impl BatchSubscriber for TestSubscriber {
    fn batches(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Stream<Item = Result<Vec<TestMessage>, Infallible>> + Send + '_ {
        self.0
            .batches(max_messages, max_wait)
            .map(|batch| batch.map(|messages| messages.into_iter().map(TestMessage).collect()))
    }
}

/// A message routed by a [`TestClient`].
///
/// Settling it is a no-op: `nack(true)` and `nack_after` succeed and do not redeliver, so
/// a test sees what the handler asked for ([`TestSubscriber`]'s capabilities say there is
/// no requeue and no redelivery count).
#[derive(Debug)]
pub struct TestMessage(MemoryMessage);

impl IncomingMessage for TestMessage {
    fn payload(&self) -> &[u8] {
        self.0.payload()
    }

    fn headers(&self) -> &Headers {
        self.0.headers()
    }

    async fn ack(self) -> Result<(), AckError> {
        self.0.ack().await
    }

    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        self.0.nack(requeue).await
    }

    fn partition_key(&self) -> Option<&[u8]> {
        self.0.partition_key()
    }

    fn name(&self) -> Option<&str> {
        self.0.name()
    }

    fn reply_to(&self) -> Option<&str> {
        self.0.reply_to()
    }
}
