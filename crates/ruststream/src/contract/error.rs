//! Errors shared by every broker: settlement failures.

use std::time::Duration;

/// A boxed error from a broker's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a message could not be settled (acked or nacked).
///
/// After a failed settlement the broker still owns the message and will redeliver it
/// where it tracks deliveries; nothing is lost, but the handler may see it again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The connection or subscription the message came from is closed.
    #[error("cannot settle the message: its connection is closed; the broker will redeliver it")]
    Closed,
    /// The broker did not confirm the settlement in time.
    #[error("the broker did not confirm the settlement within {0:?}")]
    Timeout(Duration),
    /// The broker refused the settlement (for example, the ack deadline had passed).
    #[error("the broker refused the settlement: {0}")]
    Rejected(String),
    /// The client library failed while settling.
    #[error("settlement failed in the broker client: {0}")]
    Transport(#[source] BoxError),
    /// The broker cannot do what was asked (a requeue or a delayed redelivery on a
    /// transport without redelivery): the message is settled as far as the broker can,
    /// and will not come back.
    #[error("the broker cannot {0}")]
    Unsupported(&'static str),
}
