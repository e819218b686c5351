//! Test support (feature `testing`): [`RedisBroker::in_process`], a
//! [`TestClient`] that routes by Redis rules ([`RedisGlob`]), and [`TestBroker`] for
//! [`RedisBroker`].
//!
//! In process, a name is one namespace: a publish to `jobs` reaches the subscribers of
//! the channel `jobs`, of the list `jobs`, of the stream `jobs`, and of every pattern
//! matching it. A list's subscribers, and those of one stream consumer group, share its
//! messages (each to one member); every other subscription gets its own copy. Routing
//! only: settling is a no-op and nothing is redelivered; the list and stream semantics
//! (in-flight lists, pending entries, claims) are tested against a real server by the
//! conformance tests of this crate.
//!
//! ```
//! use ruststream::prelude::*;
//! use ruststream::SubscriptionSource;
//! use ruststream_redis::{RedisBroker, RedisSource};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = RedisBroker::in_process();
//! broker.connect().await?;
//! let mut events = RedisSource::pattern("orders.*").subscribe(&broker).await?;
//! broker.publish(OutgoingMessage::new("orders.eu", b"x")).await?;
//! let message = events.next_message().await.expect("routed")?;
//! assert_eq!(message.name(), Some("orders.eu"));
//! broker.shutdown().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use ruststream::memory::MemoryError;
use ruststream::testing::{Quiescence, TestBroker, TestClient, TestSubscriber};
use ruststream::{OutgoingMessage, Publisher, Reply, RequestReply, ServerSpec};

use crate::source::Kind;
use crate::{RedisBroker, RedisError, RedisGlob, RedisSource};

/// A [`TestClient`] routing by Redis glob rules.
pub fn test_client() -> TestClient {
    TestClient::new(RedisGlob).with_server(ServerSpec::from_url(
        Some("redis"),
        "redis://localhost:6379",
    ))
}

impl RedisBroker {
    /// A broker with no server, for tests: the service's own `fn app(broker:
    /// RedisBroker) -> App` runs under [`TestApp`](ruststream::testing::TestApp)
    /// unchanged. See the [module docs](crate::testing) for how it routes.
    pub fn in_process() -> Self {
        Self::with_test_client(test_client())
    }

    /// Whether this broker routes in process.
    pub fn is_in_process(&self) -> bool {
        self.test_client().is_some()
    }
}

fn convert(error: MemoryError, other: impl FnOnce(String) -> RedisError) -> RedisError {
    match error {
        MemoryError::Closed => RedisError::Closed,
        MemoryError::NotConnected => RedisError::NotConnected,
        error => other(error.to_string()),
    }
}

/// The in-process pattern and group of `source`.
fn route(source: &RedisSource) -> (String, Option<String>) {
    let pattern = match source.kind {
        Kind::Pattern => source.name.clone(),
        _ => RedisGlob::escape(&source.name),
    };
    let group = match (source.kind, &source.group) {
        (Kind::List, _) => Some(format!("list:{}", source.name)),
        (Kind::Stream, Some(group)) => Some(format!("stream:{}:{group}", source.name)),
        _ => None,
    };
    (pattern, group)
}

pub(crate) async fn subscribe(
    client: &TestClient,
    source: &RedisSource,
) -> Result<TestSubscriber, RedisError> {
    let (pattern, group) = route(source);
    client
        .subscribe_to(&pattern, group.as_deref())
        .await
        .map_err(|error| {
            convert(error, |reason| RedisError::Subscribe {
                name: source.name.clone(),
                reason,
            })
        })
}

pub(crate) async fn publish(
    client: &TestClient,
    msg: OutgoingMessage<'_>,
) -> Result<(), RedisError> {
    let name = msg.name().to_owned();
    client
        .publish(msg)
        .await
        .map_err(|error| convert(error, |reason| RedisError::Publish { name, reason }))
}

pub(crate) async fn request(
    client: &TestClient,
    msg: OutgoingMessage<'_>,
    timeout: Duration,
) -> Result<Reply, RedisError> {
    let name = msg.name().to_owned();
    client
        .request(msg, timeout)
        .await
        .map_err(|error| convert(error, |reason| RedisError::Request { name, reason }))
}

impl TestBroker for RedisBroker {
    fn quiescence(&self) -> Quiescence {
        match self.test_client() {
            Some(client) => Quiescence::Backlog(client.backlog()),
            None => Quiescence::MessageIds,
        }
    }
}
