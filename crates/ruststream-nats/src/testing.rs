//! Test support (feature `testing`): [`NatsBroker::in_process`], a [`TestClient`] that
//! routes like NATS, and [`TestBroker`] for [`NatsBroker`].
//!
//! [`NatsBroker::in_process`] is the service's own broker type with no server behind it:
//! subscriptions, publishes and requests are routed in process under NATS subject rules
//! ([`DotSubjects`]: `*` matches one token, `>` one or more at the end), so a service
//! written as `fn app(broker: NatsBroker) -> App` runs under
//! [`TestApp`](ruststream::testing::TestApp) unchanged. A queue group or a durable
//! consumer becomes a group whose members share its messages; anything else a
//! subscription of its own. It checks subjects and headers as the server would, and
//! does core routing only: settling is a no-op and nothing is redelivered (a message
//! reports no redelivery count, so the runtime retries with its own copies). JetStream
//! behaviour (acks, redelivery, durability) is verified against a real server, by the
//! conformance tests of this crate.
//!
//! [`test_client`] is the same routing as a plain [`TestClient`], for tests generic over
//! the broker type:
//!
//! ```
//! use ruststream::prelude::*;
//! use ruststream::SubscriptionSource;
//! use ruststream_nats::NatsSource;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ruststream_nats::test_client();
//! client.connect().await?;
//! let mut sub = NatsSource::new("orders.*").queue_group("workers").subscribe(&client).await?;
//! client.publish(OutgoingMessage::new("orders.eu", b"x")).await?;
//! let message = sub.next_message().await.expect("routed")?;
//! assert_eq!(message.name(), Some("orders.eu"));
//! # Ok(()) }
//! ```
//!
//! `NatsBroker` implements [`TestBroker`]: in process it counts its backlog
//! ([`Quiescence::Backlog`]); live it takes the message ids ([`Quiescence::MessageIds`]),
//! so a service's `TestApp` tests run unchanged against a live server.

use std::time::Duration;

use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryError;
use ruststream::testing::{Quiescence, TestBroker, TestClient, TestSubscriber};
use ruststream::{Broker, OutgoingMessage, Publisher, Reply, RequestReply, SubscriptionSource};

use crate::broker::NatsBroker;
use crate::config::Config;
use crate::error::NatsError;
use crate::publisher::{check_headers, check_subject};
use crate::source::NatsSource;
use crate::subscriber::NatsSubscriber;

/// Where an in-process broker says its server is (AsyncAPI), unless given a config.
const DEFAULT_URL: &str = "nats://localhost:4222";

/// A [`TestClient`] routing by NATS subject rules.
pub fn test_client() -> TestClient {
    TestClient::new(DotSubjects)
}

impl NatsBroker {
    /// A broker with no server, for tests: subscriptions, publishes and requests are
    /// routed in process under NATS subject rules; a queue group or a durable consumer
    /// is a group whose members share its messages. Subjects and headers are checked as
    /// the server would; settling is a no-op and nothing is redelivered (JetStream
    /// behaviour is tested against a real server). It describes itself (AsyncAPI) as a
    /// NATS server at `nats://localhost:4222`. See `docs/brokers/nats.md`.
    ///
    /// ```
    /// use ruststream::prelude::*;
    /// use ruststream_nats::{NatsBroker, NatsSource};
    /// use ruststream::SubscriptionSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let broker = NatsBroker::in_process();
    /// broker.connect().await?;
    /// let mut sub = NatsSource::new("orders.>").subscribe(&broker).await?;
    /// broker.publish(OutgoingMessage::new("orders.eu.created", b"x")).await?;
    /// let message = sub.next_message().await.expect("routed")?;
    /// assert_eq!(message.subject(), "orders.eu.created");
    /// broker.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn in_process() -> Self {
        Self::in_process_with(Config::new(DEFAULT_URL))
    }

    /// [`in_process`](Self::in_process), describing itself from `config` (its first
    /// server, credentials redacted); nothing connects to that server.
    pub fn in_process_with(config: Config) -> Self {
        Self::build(config, Some(test_client()))
    }

    /// Whether this broker routes in process ([`in_process`](Self::in_process)).
    pub fn is_in_process(&self) -> bool {
        self.inner.in_process.is_some()
    }
}

/// A memory error of the in-process broker as a [`NatsError`]: closed and not connected
/// as the live broker says them, anything else through `other`.
fn convert(error: MemoryError, other: impl FnOnce(String) -> NatsError) -> NatsError {
    match error {
        MemoryError::Closed => NatsError::Closed,
        MemoryError::NotConnected => NatsError::NotConnected,
        error => other(error.to_string()),
    }
}

/// The in-process side of the broker's operations; each checks what the server would.
impl NatsBroker {
    pub(crate) async fn connect_in_process(&self, client: &TestClient) -> Result<(), NatsError> {
        client
            .connect()
            .await
            .map_err(|error| convert(error, NatsError::Config))
    }

    pub(crate) async fn shutdown_in_process(client: &TestClient) -> Result<(), NatsError> {
        client
            .shutdown()
            .await
            .map_err(|error| convert(error, NatsError::Shutdown))
    }

    pub(crate) async fn publish_in_process(
        &self,
        client: &TestClient,
        msg: OutgoingMessage<'_>,
    ) -> Result<(), NatsError> {
        if self.inner.closed.is_triggered() {
            return Err(NatsError::Closed);
        }
        check_subject(msg.name())?;
        if let Some(reply) = msg.reply_to() {
            check_subject(reply)?;
        }
        check_headers(msg.headers())?;
        let subject = msg.name().to_owned();
        client
            .publish(msg)
            .await
            .map_err(|error| convert(error, |reason| NatsError::Publish { subject, reason }))
    }

    pub(crate) async fn request_in_process(
        &self,
        client: &TestClient,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, NatsError> {
        if self.inner.closed.is_triggered() {
            return Err(NatsError::Closed);
        }
        check_subject(msg.name())?;
        check_headers(msg.headers())?;
        let subject = msg.name().to_owned();
        client
            .request(msg, timeout)
            .await
            .map_err(|error| convert(error, |reason| NatsError::Request { subject, reason }))
    }

    pub(crate) async fn subscribe_in_process(
        &self,
        client: &TestClient,
        source: NatsSource,
    ) -> Result<NatsSubscriber, NatsError> {
        if self.inner.closed.is_triggered() {
            return Err(NatsError::Closed);
        }
        let subject = source.subject().to_owned();
        let subscription = client
            .subscribe_to(&subject, source.group_name())
            .await
            .map_err(|error| {
                convert(error, |reason| NatsError::Subscribe {
                    subject: subject.clone(),
                    reason,
                })
            })?;
        Ok(NatsSubscriber::in_process(self, subject, subscription))
    }
}

impl SubscriptionSource<TestClient> for NatsSource {
    type Subscriber = TestSubscriber;

    fn name(&self) -> &str {
        self.subject()
    }

    async fn subscribe(self, client: &TestClient) -> Result<TestSubscriber, MemoryError> {
        client.subscribe_to(self.subject(), self.group_name()).await
    }

    fn with_prefix(self, prefix: &str) -> Result<Self, Self> {
        SubscriptionSource::<NatsBroker>::with_prefix(self, prefix)
    }
}

impl TestBroker for NatsBroker {
    /// In process: the messages routed and not yet taken. Live: the message ids.
    fn quiescence(&self) -> Quiescence {
        match &self.inner.in_process {
            Some(client) => Quiescence::Backlog(client.backlog()),
            None => Quiescence::MessageIds,
        }
    }
}

#[cfg(test)]
mod tests {
    use ruststream::prelude::*;
    use ruststream::{DescribeServer, Headers};

    use super::*;

    #[tokio::test]
    async fn queue_groups_share_and_plain_subscriptions_fan_out() {
        let broker = NatsBroker::in_process();
        broker.connect().await.unwrap();
        let group = || NatsSource::new("orders.*").queue_group("billing");
        let mut first = group().subscribe(&broker).await.unwrap();
        let mut second = group().subscribe(&broker).await.unwrap();
        let mut audit = NatsSource::new("orders.>")
            .subscribe(&broker)
            .await
            .unwrap();
        for n in 0..4 {
            let subject = format!("orders.{n}");
            broker
                .publish(OutgoingMessage::new(&subject, b"x"))
                .await
                .unwrap();
        }
        let mut shared = 0;
        for sub in [&mut first, &mut second] {
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(50), sub.next_message()).await
            {
                shared += 1;
            }
        }
        assert_eq!(shared, 4, "each message to one member of the group");
        for _ in 0..4 {
            let message = audit.next_message().await.unwrap().unwrap();
            assert!(message.subject().starts_with("orders."));
            assert_eq!(message.redelivery_count(), None);
            message.ack().await.unwrap();
        }
        broker.shutdown().await.unwrap();
        assert!(audit.next_message().await.is_none(), "the stream ends");
    }

    #[tokio::test]
    async fn subjects_and_headers_are_checked_as_the_server_would() {
        let broker = NatsBroker::in_process();
        broker.connect().await.unwrap();
        let wildcard = broker.publish(OutgoingMessage::new("orders.*", b"x")).await;
        assert!(
            matches!(wildcard, Err(NatsError::Subject(_))),
            "{wildcard:?}"
        );
        let headers: Headers = [("x-multi", "a\nb")].into_iter().collect();
        let header = broker
            .publish(OutgoingMessage::new("orders.eu", b"x").with_headers(&headers))
            .await;
        assert!(
            matches!(header, Err(NatsError::Header { .. })),
            "{header:?}"
        );
        let misuse = NatsSource::new("a").queue_group("g").durable("d");
        assert!(misuse.subscribe(&broker).await.is_err());
        assert!(broker.client().is_err(), "no client in process");
        broker.shutdown().await.unwrap();
        let closed = broker
            .publish(OutgoingMessage::new("orders.eu", b"x"))
            .await;
        assert_eq!(closed, Err(NatsError::Closed));
    }

    #[tokio::test]
    async fn it_describes_the_server_the_live_broker_would() {
        let broker = NatsBroker::in_process();
        assert!(broker.is_in_process());
        let spec = broker.describe_server();
        assert_eq!(
            (spec.protocol.as_str(), spec.host.as_str()),
            ("nats", "localhost:4222")
        );
        let configured =
            NatsBroker::in_process_with(Config::new("nats://u:pa55@nats.internal:4222"));
        let spec = configured.describe_server();
        assert_eq!(spec.host, "nats.internal:4222");
        assert!(!format!("{spec:?}").contains("pa55"));
        assert_eq!(broker.quiescence(), Quiescence::Backlog(0));
        let live = NatsBroker::new(Config::new("nats://127.0.0.1:4222"));
        assert_eq!(live.quiescence(), Quiescence::MessageIds);
    }
}
