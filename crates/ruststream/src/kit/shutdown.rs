//! [`Shutdown`]: the signal a broker's `shutdown` sets once, and [`ShutdownWatch`], what
//! a subscriber stream holds to end when it is set.
//!
//! A stream checks the signal for every message, so the check is one atomic load
//! ([`ShutdownWatch::is_triggered`]). An idle stream must also wake when the signal is
//! set, so it polls the watch ([`ShutdownWatch::poll_triggered`]), which registers the
//! task's waker only when it changed since the last poll: a busy stream that goes idle
//! between messages does not take the notifier's lock each time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

#[derive(Default)]
struct Shared {
    triggered: AtomicBool,
    notify: Arc<Notify>,
}

/// A shutdown signal: set once by [`trigger`](Self::trigger), then set forever. Clones
/// share it.
///
/// ```
/// use ruststream::kit::Shutdown;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let shutdown = Shutdown::new();
/// let mut watch = shutdown.watch();
/// assert!(!watch.is_triggered());
/// assert!(shutdown.trigger(), "the first call sets it");
/// assert!(!shutdown.trigger(), "later calls find it set");
/// futures::future::poll_fn(|cx| watch.poll_triggered(cx)).await;
/// shutdown.triggered().await;
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Shutdown {
    shared: Arc<Shared>,
}

impl Shutdown {
    /// A signal not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the signal and wakes every watcher. Returns `true` for the call that set it,
    /// `false` when it was set already (so teardown runs once).
    pub fn trigger(&self) -> bool {
        // The flag first: a watcher that wakes finds it set.
        let first = !self.shared.triggered.swap(true, Ordering::AcqRel);
        self.shared.notify.notify_waiters();
        first
    }

    /// Whether the signal is set: one atomic load.
    #[inline]
    pub fn is_triggered(&self) -> bool {
        self.shared.triggered.load(Ordering::Acquire)
    }

    /// Completes once the signal is set.
    pub async fn triggered(&self) {
        // Created before the check: a `trigger` in between still completes it.
        let notified = self.shared.notify.notified();
        if self.is_triggered() {
            return;
        }
        notified.await;
    }

    /// A watch for a stream to poll, each with its own registration.
    pub fn watch(&self) -> ShutdownWatch {
        ShutdownWatch {
            // Created before any check of the flag, so no `trigger` is missed.
            waiter: Box::pin(Arc::clone(&self.shared.notify).notified_owned()),
            shared: Arc::clone(&self.shared),
            waker: None,
            fired: false,
        }
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// One stream's view of a [`Shutdown`]: cheap to check, and pollable with the waker it
/// registered cached.
pub struct ShutdownWatch {
    shared: Arc<Shared>,
    waiter: Pin<Box<OwnedNotified>>,
    /// The waker `waiter` last registered: polling it again with the same one would only
    /// take its lock to find nothing changed.
    waker: Option<Waker>,
    fired: bool,
}

impl ShutdownWatch {
    /// Whether the signal is set: one atomic load, for a per-message check.
    #[inline]
    pub fn is_triggered(&self) -> bool {
        self.shared.triggered.load(Ordering::Acquire)
    }

    /// `Ready` once the signal is set; otherwise `Pending`, with the task registered to
    /// wake when it is. Poll it when the stream has nothing ready.
    pub fn poll_triggered(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired || self.is_triggered() {
            self.fired = true;
            return Poll::Ready(());
        }
        if self
            .waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            // Registered with this task already: `trigger` wakes it.
            return Poll::Pending;
        }
        match self.waiter.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.fired = true;
                Poll::Ready(())
            }
            Poll::Pending => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl fmt::Debug for ShutdownWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownWatch")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::future::poll_fn;

    use super::*;

    #[tokio::test]
    async fn an_idle_watch_wakes_when_triggered() {
        let shutdown = Shutdown::new();
        let mut watch = shutdown.watch();
        let waiting = tokio::spawn(async move { poll_fn(|cx| watch.poll_triggered(cx)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("woken")
            .unwrap();
    }

    #[tokio::test]
    async fn a_watch_made_after_the_trigger_is_ready_at_once() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let mut watch = shutdown.watch();
        assert!(watch.is_triggered());
        poll_fn(|cx| watch.poll_triggered(cx)).await;
        shutdown.triggered().await;
    }

    #[tokio::test]
    async fn polling_again_with_the_same_waker_stays_pending_until_triggered() {
        let shutdown = Shutdown::new();
        let mut watch = shutdown.watch();
        poll_fn(|cx| {
            assert!(watch.poll_triggered(cx).is_pending());
            assert!(watch.poll_triggered(cx).is_pending());
            shutdown.trigger();
            assert!(watch.poll_triggered(cx).is_ready());
            Poll::Ready(())
        })
        .await;
    }

    #[tokio::test]
    async fn triggered_waits_for_the_trigger() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        let waiting = tokio::spawn(async move { clone.triggered().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        assert!(shutdown.trigger());
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert!(shutdown.is_triggered());
    }
}
