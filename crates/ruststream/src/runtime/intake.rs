//! [`Intake`]: whether a subscription may take more messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Stops intake: a token to wait on while a subscription is idle, and a flag for the check
/// made before every message (one atomic load; `CancellationToken::is_cancelled` takes a
/// lock, which is a tenth of the runtime's per-message budget).
#[derive(Debug, Clone)]
pub(crate) struct Intake {
    token: CancellationToken,
    stopped: Arc<AtomicBool>,
    /// The flag of the intake this one was made from ([`child`](Self::child)).
    parent: Option<Arc<AtomicBool>>,
}

impl Intake {
    /// An intake whose token is a child of `token`. Cancelling `token` alone wakes the
    /// waiters but does not set the flag: whoever cancels it cancels this intake too.
    pub(crate) fn child_of(token: &CancellationToken) -> Self {
        Self {
            token: token.child_token(),
            stopped: Arc::new(AtomicBool::new(false)),
            parent: None,
        }
    }

    /// An intake stopped with this one, or on its own.
    pub(crate) fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
            stopped: Arc::new(AtomicBool::new(false)),
            parent: Some(Arc::clone(&self.stopped)),
        }
    }

    /// Stops intake: the flag first, so a check after a waiter wakes sees it.
    pub(crate) fn cancel(&self) {
        self.stopped.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// Whether intake has stopped.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
            || self
                .parent
                .as_ref()
                .is_some_and(|parent| parent.load(Ordering::Acquire))
    }

    /// Completes once intake stops.
    pub(crate) fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_stops_with_its_parent_and_alone() {
        let root = CancellationToken::new();
        let intake = Intake::child_of(&root);
        let child = intake.child();
        assert!(!intake.is_cancelled() && !child.is_cancelled());
        child.cancel();
        assert!(child.is_cancelled() && !intake.is_cancelled());
        let other = intake.child();
        intake.cancel();
        assert!(intake.is_cancelled() && other.is_cancelled());
        assert!(other.cancelled().now_or_never().is_some());
        assert!(!root.is_cancelled(), "a child never stops its parent");
    }

    use futures::FutureExt as _;
}
