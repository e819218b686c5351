//! # ruststream-nats
//!
//! NATS for [RustStream](ruststream), on [async-nats](async_nats): core subjects with
//! wildcards and queue groups, JetStream durable pull consumers with explicit acks (queued,
//! or confirmed by the server with `Config::confirmed_acks`), native delayed redelivery and batches, acknowledged JetStream publishes
//! with de-duplication, request-reply, and AsyncAPI server bindings.
//!
//! | file | what it holds |
//! |---|---|
//! | [`config`] | [`Config`]: URLs, credentials, TLS, timeouts, reconnects |
//! | `broker` | [`NatsBroker`]: `Broker`, `Subscribe`, `RequestReply` |
//! | `source` | [`NatsSource`]: core subject, queue group or JetStream consumer |
//! | `subscriber` | [`NatsSubscriber`]: the stream, `BatchSubscriber` |
//! | `message` | [`NatsMessage`]: headers and settlement |
//! | `publisher` | `Publisher` for `NatsBroker`, [`JetStreamPublisher`], header mapping |
//! | `testing` | `NatsBroker::in_process`, [`test_client`] and `TestBroker` (feature `testing`) |
//! | `asyncapi` | `DescribeServer` and the NATS bindings |
//! | `error` | [`NatsError`] |
//!
//! A service with a core handler and a JetStream handler:
//!
//! ```no_run
//! use ruststream::runtime::{handler_fn, App, Router, SubscriberDef};
//! use ruststream_nats::{Config, NatsBroker, NatsSource};
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64 }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = NatsBroker::new(Config::new("nats://127.0.0.1:4222").name("orders"));
//! let router = Router::new()
//!     .subscriber(SubscriberDef::new(
//!         NatsSource::new("orders.*").queue_group("audit"),
//!         handler_fn(|order: Order| async move { println!("seen {}", order.id) }),
//!     ))
//!     .subscriber(SubscriberDef::new(
//!         NatsSource::new("orders.created").stream("ORDERS").durable("billing"),
//!         handler_fn(|order: Order| async move { println!("bill {}", order.id) }),
//!     ));
//! App::new("orders").broker(broker, router).run().await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/brokers/nats.md` for the whole guide.

pub mod asyncapi;
mod broker;
pub mod config;
mod error;
mod message;
mod publisher;
mod source;
mod subscriber;
#[cfg(feature = "testing")]
mod testing;

pub use broker::NatsBroker;
pub use config::Config;
pub use error::NatsError;
pub use message::NatsMessage;
pub use publisher::JetStreamPublisher;
pub use source::{DEFAULT_BATCH, NatsSource};
pub use subscriber::NatsSubscriber;
#[cfg(feature = "testing")]
pub use testing::test_client;

/// The crate's page of docs, compiled so its examples stay true.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../../docs/brokers/nats.md")]
struct NatsGuide;
