//! [`Intake`]: whether a subscription may take more messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Stops intake: a token to wait on while a subscription is idle, and flags for the check
/// made before every message (an atomic load per level; `CancellationToken::is_cancelled`
/// takes a lock, which is a tenth of the runtime's per-message budget).
///
/// Intakes form a tree like their tokens: cancelling one stops it and everything made
/// from it with [`child`](Self::child), never its parent.
#[derive(Debug, Clone)]
pub(crate) struct Intake {
    token: CancellationToken,
    flag: Arc<Flag>,
}

#[derive(Debug, Default)]
struct Flag {
    stopped: AtomicBool,
    parent: Option<Arc<Flag>>,
}

impl Flag {
    fn is_set(&self) -> bool {
        self.stopped.load(Ordering::Acquire) || self.parent.as_ref().is_some_and(|p| p.is_set())
    }
}

impl Intake {
    /// A root intake.
    pub(crate) fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            flag: Arc::default(),
        }
    }

    /// An intake stopped with this one, or on its own.
    pub(crate) fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
            flag: Arc::new(Flag {
                stopped: AtomicBool::new(false),
                parent: Some(Arc::clone(&self.flag)),
            }),
        }
    }

    /// Stops intake: the flag first, so a waiter woken by the token sees it.
    pub(crate) fn cancel(&self) {
        self.flag.stopped.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// Whether intake has stopped, here or in an ancestor.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.flag.is_set()
    }

    /// Completes once intake stops.
    pub(crate) fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    #[test]
    fn cancelling_stops_the_intake_and_its_descendants_only() {
        let root = Intake::new();
        let route = root.child();
        let worker = route.child();
        assert!(!route.is_cancelled() && !worker.is_cancelled());
        worker.cancel();
        assert!(worker.is_cancelled() && !route.is_cancelled() && !root.is_cancelled());
        let other = route.child();
        root.cancel();
        assert!(route.is_cancelled() && other.is_cancelled());
        assert!(other.cancelled().now_or_never().is_some());
    }
}
