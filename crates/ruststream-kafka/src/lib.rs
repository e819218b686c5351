//! Kafka broker for RustStream, on rdkafka (librdkafka).
//!
//! - [`KafkaBroker`]: the connection; `Broker`, `Subscribe`, `Publisher`, `Partitioned`,
//!   `DescribeServer`; [`KafkaBroker::send`] for a [`Record`] with an explicit
//!   partition; [`KafkaBroker::transactional`] for Kafka transactions.
//! - [`KafkaSource`]: topics read in a consumer group, from a [`StartFrom`] position.
//! - [`KafkaSubscriber`] and [`KafkaMessage`]: tracked commits (an offset is committed
//!   only when every earlier message of its partition is settled), retries through a
//!   retry topic, the record key as `partition_key()`.
//!
//! ```no_run
//! use ruststream::prelude::*;
//! use ruststream_kafka::{Config, KafkaBroker, KafkaSource, StartFrom};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = KafkaBroker::new(Config::new("127.0.0.1:9092").client_id("billing"));
//! broker.connect().await?;
//! let mut orders = KafkaSource::new("orders")
//!     .group("billing")
//!     .start_from(StartFrom::Earliest)
//!     .subscribe(&broker)
//!     .await?;
//! broker
//!     .publish(OutgoingMessage::new("orders", b"{\"id\":1}").with_key(b"customer-7"))
//!     .await?;
//! if let Some(Ok(message)) = orders.next_message().await {
//!     assert_eq!(message.partition_key(), Some(&b"customer-7"[..]));
//!     message.ack().await?;
//! }
//! broker.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/brokers/kafka.md` for the whole guide.
#![forbid(unsafe_code)]

mod asyncapi;
mod broker;
mod config;
mod error;
mod message;
mod publisher;
mod source;
mod subscriber;
#[cfg(feature = "testing")]
mod testing;
mod tracker;

pub use broker::KafkaBroker;
pub use config::{Compression, Config, Sasl, SecurityProtocol, TopicDefaults};
pub use error::KafkaError;
pub use message::{DUE_HEADER, KafkaMessage, ORIGIN_HEADER, REDELIVERIES_HEADER};
pub use publisher::{Delivered, KafkaTransaction, KafkaTransactionalPublisher, Record};
pub use source::{KafkaSource, StartFrom};
pub use subscriber::KafkaSubscriber;
#[cfg(feature = "testing")]
pub use testing::KafkaTopics;

/// The crate's page of docs, compiled so its examples stay true.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../../docs/brokers/kafka.md")]
struct KafkaGuide;
