//! [`Batcher`]: cancel-safe batch gathering over a subscriber's message stream, for a
//! `BatchSubscriber` implementation.
//!
//! A batch holds at most `max` messages and is never empty: the first message is
//! awaited, then more are taken until the batch is full or `max_wait` has passed since
//! the first. The messages being gathered live in the [`Batcher`], which the subscriber
//! owns, so dropping the `batches` stream (or the future of one batch) loses nothing: the
//! next batch, or the per-message stream, starts with them.
//!
//! The subscriber keeps its source and its `Batcher` in separate fields, and hands the
//! source over as a closure polling one message:
//!
//! ```
//! use std::task::{Context, Poll};
//! use std::time::Duration;
//!
//! use futures::Stream;
//! use ruststream::kit::Batcher;
//! use tokio::sync::mpsc;
//!
//! struct MySubscriber {
//!     source: mpsc::Receiver<u32>,
//!     batcher: Batcher<u32, std::io::Error>,
//! }
//!
//! fn poll_source(
//!     source: &mut mpsc::Receiver<u32>,
//!     cx: &mut Context<'_>,
//! ) -> Poll<Option<Result<u32, std::io::Error>>> {
//!     source.poll_recv(cx).map(|message| message.map(Ok))
//! }
//!
//! impl MySubscriber {
//!     fn stream(&mut self) -> impl Stream<Item = Result<u32, std::io::Error>> + '_ {
//!         futures::stream::poll_fn(|cx| {
//!             let Self { source, batcher } = self;
//!             batcher.poll_next(cx, |cx| poll_source(source, cx))
//!         })
//!     }
//!
//!     async fn next_batch(&mut self) -> Option<Result<Vec<u32>, std::io::Error>> {
//!         let Self { source, batcher } = self;
//!         batcher
//!             .next_batch(10, Duration::from_millis(5), |cx| poll_source(source, cx))
//!             .await
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (tx, rx) = mpsc::channel(16);
//! let mut subscriber = MySubscriber { source: rx, batcher: Batcher::new() };
//! for n in 0..3 {
//!     tx.send(n).await.unwrap();
//! }
//! assert_eq!(subscriber.next_batch().await.unwrap().unwrap(), [0, 1, 2]);
//! # }
//! ```

use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// The state of the batch being gathered: its messages, its deadline, and an error met
/// while filling it (handed out after the batch).
pub struct Batcher<T, E> {
    partial: Vec<T>,
    deadline: Option<Instant>,
    failed: Option<E>,
}

impl<T, E> Default for Batcher<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, E> Batcher<T, E> {
    /// Nothing gathered yet; allocates nothing until the first batch.
    pub const fn new() -> Self {
        Self {
            partial: Vec::new(),
            deadline: None,
            failed: None,
        }
    }

    /// How many messages are held (from a batch whose future was dropped).
    pub fn len(&self) -> usize {
        self.partial.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.partial.is_empty() && self.failed.is_none()
    }

    /// The next message for the per-message stream: an error met while gathering, then
    /// the messages of an interrupted batch, then `source`. On the common path (nothing
    /// held) that is two checks before `source`.
    #[inline]
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        source: impl FnOnce(&mut Context<'_>) -> Poll<Option<Result<T, E>>>,
    ) -> Poll<Option<Result<T, E>>> {
        if let Some(error) = self.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if !self.partial.is_empty() {
            return Poll::Ready(Some(Ok(self.partial.remove(0))));
        }
        source(cx)
    }

    /// The next batch: at most `max` messages (at least 1), never empty; `None` once the
    /// source has ended and nothing is held. An error of the source before the first
    /// message is returned at once; after it, the batch is handed out and the error
    /// comes next.
    pub async fn next_batch(
        &mut self,
        max: usize,
        max_wait: Duration,
        mut source: impl FnMut(&mut Context<'_>) -> Poll<Option<Result<T, E>>>,
    ) -> Option<Result<Vec<T>, E>> {
        let max = max.max(1);
        if self.partial.is_empty() {
            match futures::future::poll_fn(|cx| self.poll_next(cx, &mut source)).await {
                None => return None,
                Some(Err(error)) => return Some(Err(error)),
                Some(Ok(first)) => {
                    self.partial.push(first);
                    self.deadline = Some(Instant::now() + max_wait);
                }
            }
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + max_wait);
        while self.partial.len() < max {
            // From the source only: `partial` is what is being filled.
            let next = tokio::time::timeout_at(deadline, futures::future::poll_fn(&mut source));
            match next.await {
                Ok(Some(Ok(message))) => self.partial.push(message),
                Ok(Some(Err(error))) => {
                    self.failed = Some(error);
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        self.deadline = None;
        Some(Ok(std::mem::take(&mut self.partial)))
    }
}

impl<T, E> fmt::Debug for Batcher<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("held", &self.partial.len())
            .field("failed", &self.failed.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use futures::FutureExt as _;
    use tokio::sync::mpsc;

    use super::*;

    type Source = mpsc::Receiver<Result<u32, &'static str>>;

    fn poll(source: &mut Source, cx: &mut Context<'_>) -> Poll<Option<Result<u32, &'static str>>> {
        source.poll_recv(cx)
    }

    async fn batch(
        batcher: &mut Batcher<u32, &'static str>,
        source: &mut Source,
        max: usize,
        wait: Duration,
    ) -> Option<Result<Vec<u32>, &'static str>> {
        batcher.next_batch(max, wait, |cx| poll(source, cx)).await
    }

    #[tokio::test]
    async fn a_full_batch_is_yielded_at_once_and_the_rest_waits() {
        let (tx, mut rx) = mpsc::channel(16);
        for n in 0..5 {
            tx.send(Ok(n)).await.unwrap();
        }
        let mut batcher = Batcher::new();
        let long = Duration::from_secs(30);
        let first = batch(&mut batcher, &mut rx, 3, long).await;
        assert_eq!(first, Some(Ok(vec![0, 1, 2])));
        let started = Instant::now();
        let second = batch(&mut batcher, &mut rx, 3, Duration::from_millis(50)).await;
        assert_eq!(second, Some(Ok(vec![3, 4])));
        assert!(started.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn batches_are_never_empty_and_end_with_the_source() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(Ok(1)).await.unwrap();
        drop(tx);
        let mut batcher = Batcher::new();
        let wait = Duration::from_millis(10);
        assert_eq!(
            batch(&mut batcher, &mut rx, 0, wait).await,
            Some(Ok(vec![1]))
        );
        assert_eq!(batch(&mut batcher, &mut rx, 5, wait).await, None);
    }

    #[tokio::test]
    async fn a_dropped_batch_future_loses_nothing() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(Ok(1)).await.unwrap();
        tx.send(Ok(2)).await.unwrap();
        let mut batcher = Batcher::new();
        {
            let gathering = pin!(batch(&mut batcher, &mut rx, 10, Duration::from_millis(100)));
            // Takes both, then waits for more: dropped while waiting.
            assert!(gathering.now_or_never().is_none());
        }
        assert_eq!(batcher.len(), 2);
        tx.send(Ok(3)).await.unwrap();
        let next = futures::future::poll_fn(|cx| batcher.poll_next(cx, |cx| poll(&mut rx, cx)));
        assert_eq!(
            next.await,
            Some(Ok(1)),
            "the per-message stream starts with them"
        );
        // The interrupted batch keeps its deadline.
        let rest = batch(&mut batcher, &mut rx, 10, Duration::from_secs(30)).await;
        assert_eq!(rest, Some(Ok(vec![2, 3])));
    }

    #[tokio::test]
    async fn an_error_after_the_first_message_comes_after_the_batch() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(Ok(1)).await.unwrap();
        tx.send(Err("broken")).await.unwrap();
        let mut batcher = Batcher::new();
        let wait = Duration::from_secs(30);
        assert_eq!(
            batch(&mut batcher, &mut rx, 5, wait).await,
            Some(Ok(vec![1]))
        );
        assert!(!batcher.is_empty());
        assert_eq!(
            batch(&mut batcher, &mut rx, 5, wait).await,
            Some(Err("broken"))
        );
        assert!(batcher.is_empty());
    }
}
