//! The embedded in-process broker (feature `memory`).
//!
//! A real broker, not a mock: subjects with `*` / `>` wildcards, fan-out subscriptions and
//! competing consumer groups, acks, `nack(true)` redelivery, `nack(false)` drop,
//! `nack_after` with its delay, a redelivery count, partition keys, bounded queues with
//! back-pressure, request-reply, transactions, batches and a server description.
//!
//! It implements every capability trait of the contract and passes the whole conformance
//! harness. Messages live in memory: they do not survive the process.

mod broker;
mod config;
mod envelope;
mod error;
mod hub;
mod message;
mod queue;
mod source;
mod subscriber;
mod transaction;

pub use broker::MemoryBroker;
pub use config::MemoryConfig;
pub use error::MemoryError;
pub use message::MemoryMessage;
pub use source::MemorySource;
pub use subscriber::MemorySubscriber;
pub use transaction::MemoryTransaction;

#[cfg(feature = "testing")]
pub(crate) use message::Redelivery;
