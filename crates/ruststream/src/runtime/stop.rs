//! [`StopSignal`]: a tree of stop signals, for the app, its subscriptions and their workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// A stop signal: a token to wait on while a subscription is idle, and a flag for the
/// check made before every message (an atomic load, where
/// `CancellationToken::is_cancelled` takes a lock).
///
/// Signals form a tree like their tokens: cancelling one stops it and everything made
/// from it with [`child`](Self::child), never its parent. Cancelling sets the flags of
/// the whole subtree, so a check never walks up the tree.
#[derive(Debug, Clone)]
pub(crate) struct StopSignal {
    token: CancellationToken,
    flag: Arc<Stopped>,
}

#[derive(Debug, Default)]
struct Stopped {
    stopped: AtomicBool,
    /// The flags of the signals made from this one, set with it.
    children: Mutex<Vec<Weak<Stopped>>>,
}

impl Stopped {
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

impl StopSignal {
    /// A root signal.
    pub(crate) fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            flag: Arc::default(),
        }
    }

    /// A signal stopped with this one, or on its own.
    pub(crate) fn child(&self) -> Self {
        let flag = Arc::new(Stopped::default());
        {
            let mut children = lock(&self.flag.children);
            // Checked under the lock `set` takes, so a child is either registered before
            // the parent is stopped or sees it stopped.
            if self.flag.stopped.load(Ordering::Acquire) {
                flag.stopped.store(true, Ordering::Release);
            } else {
                // Children of a long-lived signal come and go (one per resubscription).
                children.retain(|child| child.strong_count() > 0);
                children.push(Arc::downgrade(&flag));
            }
        }
        Self {
            token: self.token.child_token(),
            flag,
        }
    }

    /// Stops: the flags first, so a waiter woken by the token sees them.
    pub(crate) fn cancel(&self) {
        self.flag.set();
        self.token.cancel();
    }

    /// Whether this signal has stopped, here or in an ancestor.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.flag.stopped.load(Ordering::Acquire)
    }

    /// Completes once this signal stops.
    pub(crate) fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    #[test]
    fn cancelling_stops_the_signal_and_its_descendants_only() {
        let root = StopSignal::new();
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
