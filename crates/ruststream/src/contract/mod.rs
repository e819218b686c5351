//! The broker contract: the traits a broker crate implements and the types they exchange.
//!
//! This module has no broker dependency and no runtime. A broker crate depends on
//! `ruststream` with `default-features = false` and implements:
//!
//! - [`Broker`]: lifecycle only (`connect`, `shutdown`);
//! - [`Subscribe`] and/or [`SubscriptionSource`]: how a subscription is opened;
//! - [`Subscriber`]: a `Stream` of [`IncomingMessage`]s;
//! - [`Publisher`]: sends an [`OutgoingMessage`];
//! - the capability traits in [`capability`] for what its client really supports.
//!
//! Every method returns a `Send` future so the runtime can spawn it; implementors still
//! write `async fn`.

pub mod broker;
pub mod capability;
pub mod error;
pub mod headers;
pub mod message;
pub mod publisher;
pub mod server;
pub mod subscriber;

pub use broker::{Broker, Subscribe, SubscriptionSource};
pub use capability::{
    BatchSubscriber, Capabilities, DescribeServer, HeaderSupport, Partitioned, Reply, RequestReply,
    Transaction, TransactionalPublisher,
};
pub use error::{AckError, BoxError};
pub use headers::Headers;
pub use message::IncomingMessage;
pub use publisher::{OutgoingMessage, Publisher};
pub use server::ServerSpec;
pub use subscriber::{Subscriber, SubscriberExt};
