//! The everyday imports: `use ruststream::prelude::*;`.

pub use crate::codec::{Codec, Decode, Encode};
pub use crate::contract::{
    BatchSubscriber, Broker, DescribeServer, Headers, IncomingMessage, OutgoingMessage,
    Partitioned, Publisher, RequestReply, Subscribe, Subscriber, SubscriberExt, SubscriptionSource,
    Transaction, TransactionalPublisher,
};
pub use futures::StreamExt as _;

#[cfg(feature = "json")]
pub use crate::codec::Json;
#[cfg(feature = "memory")]
pub use crate::memory::{MemoryBroker, MemorySource};
#[cfg(feature = "runtime")]
pub use crate::runtime::{App, Producer, Router, Settle, State};
#[cfg(feature = "macros")]
pub use crate::subscriber;
