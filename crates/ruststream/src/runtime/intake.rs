//! [`Intake`]: whether a subscription may take more messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Stops intake: a token to wait on while a subscription is idle, and a flag for the check
/// made before every message (one atomic load; `CancellationToken::is_cancelled` takes a
/// lock, which is a tenth of the runtime's per-message budget).
///
/// Intakes form a tree like their tokens: cancelling one stops it and everything made
/// from it with [`child`](Self::child), never its parent. Cancelling sets the flags of
/// the whole subtree, so a check never walks up the tree.
#[derive(Debug, Clone)]
pub(crate) struct Intake {
    token: CancellationToken,
    flag: Arc<Flag>,
}

#[derive(Debug, Default)]
struct Flag {
    stopped: AtomicBool,
    /// The flags of the intakes made from this one, set with it.
    children: Mutex<Vec<Weak<Flag>>>,
}

impl Flag {
    fn set(&self) {
        self.stopped.store(true, Ordering::Release);
        let children = std::mem::take(&mut *lock(&self.children));
        for child in children.iter().filter_map(Weak::upgrade) {
            child.set();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
        let flag = Arc::new(Flag::default());
        {
            let mut children = lock(&self.flag.children);
            // Checked under the lock `set` takes, so a child is either registered before
            // the parent is stopped or sees it stopped.
            if self.flag.stopped.load(Ordering::Acquire) {
                flag.stopped.store(true, Ordering::Release);
            } else {
                // Children of a long-lived intake come and go (one per resubscription).
                children.retain(|child| child.strong_count() > 0);
                children.push(Arc::downgrade(&flag));
            }
        }
        Self {
            token: self.token.child_token(),
            flag,
        }
    }

    /// Stops intake: the flags first, so a waiter woken by the token sees them.
    pub(crate) fn cancel(&self) {
        self.flag.set();
        self.token.cancel();
    }

    /// Whether intake has stopped, here or in an ancestor.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.flag.stopped.load(Ordering::Acquire)
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
