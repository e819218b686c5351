//! Redis broker for RustStream, on [redis-rs](https://docs.rs/redis) and its tokio
//! connection manager.
//!
//! One descriptor, [`RedisSource`], covers the three ways Redis moves messages:
//!
//! | kind | how | guarantee |
//! |---|---|---|
//! | [`RedisSource::channel`], [`RedisSource::pattern`] | Pub/Sub `SUBSCRIBE` / `PSUBSCRIBE` | at most once: nothing is kept for a subscriber that is not there, no requeue |
//! | [`RedisSource::list`] | `BLMOVE` into a per-consumer in-flight list, `LREM` on ack | at least once: an in-flight list whose consumer stopped beating is moved back |
//! | [`RedisSource::stream`] + [`group`](RedisSource::group) | `XREADGROUP`, `XACK`, `XAUTOCLAIM` | at least once, delivery counts, `max_deliver` to a dead-letter stream |
//!
//! Headers travel as stream entry fields, and in FastStream 0.7's binary envelope on
//! channels and lists (see `docs/brokers/redis.md`), so a FastStream service reads what
//! this crate publishes and the reverse.
//!
//! See `docs/brokers/redis.md` for the whole guide.
//!
//! ```no_run
//! use ruststream::prelude::*;
//! use ruststream::SubscriptionSource;
//! use ruststream_redis::{Config, RedisBroker, RedisSource};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = RedisBroker::new(Config::new("redis://127.0.0.1:6379"));
//! broker.connect().await?;
//! let mut orders = RedisSource::stream("orders").group("billing").subscribe(&broker).await?;
//! broker.streams().publish(OutgoingMessage::new("orders", b"{\"id\":1}")).await?;
//! let message = orders.next_message().await.expect("open")?;
//! message.ack().await?;
//! broker.shutdown().await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod asyncapi;
mod broker;
mod config;
mod envelope;
mod error;
mod matching;
mod message;
mod publisher;
mod source;
mod subscriber;
#[cfg(feature = "testing")]
pub mod testing;

pub use broker::RedisBroker;
pub use config::Config;
pub use error::RedisError;
pub use matching::RedisGlob;
pub use message::{CORRELATION_ID, DATA_FIELD, REPLY_TO, RedisMessage};
pub use publisher::{Destination, REPLY_PREFIX, RedisPublisher, RedisTransaction};
pub use source::{Kind, RedisSource, StartFrom};
pub use subscriber::RedisSubscriber;
#[cfg(feature = "testing")]
pub use testing::test_client;

/// The crate's page of docs, compiled so its examples stay true.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../../docs/brokers/redis.md")]
struct RedisGuide;
