//! # ruststream-rabbitmq
//!
//! RabbitMQ for [RustStream](ruststream), on [lapin]: exchanges of every kind,
//! classic and quorum queues with their arguments, bindings by routing key or headers,
//! declared when a subscription opens or only checked; consumers with a prefetch and
//! manual acks; publishes that are persistent, mandatory and confirmed; durable delayed
//! retries through delay queues and dead letters through dead-letter exchanges;
//! reconnection; AMQP transactions; request-reply through direct reply-to; and AsyncAPI
//! server and bindings.
//!
//! | file | what it holds |
//! |---|---|
//! | [`config`] | [`Config`]: AMQP URI, virtual host, credentials, TLS, heartbeat, prefetch, outages |
//! | `broker` | [`RabbitBroker`]: the connection, `Broker`, `Subscribe`, reconnection |
//! | `source` | [`RabbitQueue`] (the subscription source) and [`RabbitExchange`] |
//! | `subscriber` | [`RabbitSubscriber`]: the stream, `BatchSubscriber` |
//! | `message` | [`RabbitMessage`]: headers and properties, settlement, delay queues |
//! | `publisher` | `Publisher` for `RabbitBroker`, [`RabbitPublisher`], transactions, requests |
//! | [`asyncapi`] | `DescribeServer` and the AMQP bindings |
//! | `testing` | `TestBroker` for `RabbitBroker` (feature `testing`) |
//! | `error` | [`RabbitError`] |
//!
//! A service consuming a quorum queue bound to a topic exchange:
//!
//! ```no_run
//! use ruststream::runtime::{handler_fn, App, Router, SubscriberDef};
//! use ruststream_rabbitmq::{Config, RabbitBroker, RabbitExchange, RabbitQueue};
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64 }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = RabbitBroker::new(Config::new("amqp://guest:guest@127.0.0.1:5672/%2f"));
//! let router = Router::new().subscriber(SubscriberDef::new(
//!     RabbitQueue::new("billing")
//!         .quorum()
//!         .bind(RabbitExchange::topic("orders"), "orders.*.created"),
//!     handler_fn(|order: Order| async move { println!("bill {}", order.id) }),
//! ));
//! App::new("billing").broker(broker, router).run().await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/brokers/rabbitmq.md` for the whole guide.

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

pub use broker::RabbitBroker;
pub use config::{Config, DEFAULT_PREFETCH};
pub use error::RabbitError;
pub use message::{RETRIES_HEADER, RabbitMessage};
pub use publisher::{RabbitPublisher, RabbitTransaction};
pub use source::{Binding, ExchangeType, QueueType, RabbitExchange, RabbitQueue, Value};
pub use subscriber::RabbitSubscriber;

/// The crate's page of docs, compiled so its examples stay true.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../../docs/brokers/rabbitmq.md")]
struct RabbitGuide;
