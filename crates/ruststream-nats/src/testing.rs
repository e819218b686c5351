//! Test support (feature `testing`): a [`TestClient`] that routes like NATS, and
//! [`TestBroker`] for [`NatsBroker`].
//!
//! [`test_client`] is the in-process stand-in: core routing only, under NATS subject
//! rules ([`DotSubjects`]: `*` matches one token, `>` one or more at the end). A
//! [`NatsSource`] maps onto it: a queue group or a durable consumer becomes a group that
//! shares messages, anything else a plain subscription. Settlement is a no-op there and
//! nothing is redelivered; JetStream behaviour (acks, redelivery, durability) is verified
//! against a real server, by the conformance tests of this crate.
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
//! `NatsBroker` implements [`TestBroker`] with the default quiescence (message ids), so a
//! service's `TestApp` tests run unchanged against a live server.

use ruststream::SubscriptionSource;
use ruststream::matching::DotSubjects;
use ruststream::memory::MemoryError;
use ruststream::testing::{TestBroker, TestClient, TestSubscriber};

use crate::broker::NatsBroker;
use crate::source::NatsSource;

/// A [`TestClient`] routing by NATS subject rules.
pub fn test_client() -> TestClient {
    TestClient::new(DotSubjects)
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

impl TestBroker for NatsBroker {}
