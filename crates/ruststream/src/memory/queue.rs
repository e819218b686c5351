//! A bounded multi-consumer queue of deliveries: the storage of one subscription or one
//! consumer group.
//!
//! Publishers wait for room (back-pressure); redeliveries go to the front and ignore the
//! bound, so settling a message never waits and never fails.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::envelope::{Envelope, EnvelopePool};

/// One delivery of an envelope to one queue.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) envelope: Arc<Envelope>,
    pub(crate) redeliveries: u32,
}

/// Why a push did not happen.
pub(crate) enum PushError {
    /// The queue is closed (its subscriber is gone).
    Closed,
    /// The queue stayed full until the deadline.
    Full,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Delivery>,
    closed: bool,
}

pub(crate) struct DeliveryQueue {
    state: Mutex<State>,
    readable: Notify,
    writable: Notify,
    capacity: usize,
    pool: Arc<EnvelopePool>,
    /// Redeliveries waiting for their delay.
    scheduled: AtomicUsize,
    /// Consumers and publishers about to wait or waiting: a wake-up is sent only when
    /// someone may need it. Each raises its count before looking at the state, so a change
    /// made after that look always sees the count.
    waiting_consumers: AtomicUsize,
    waiting_publishers: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves a consistent VecDeque; keep going.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for DeliveryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryQueue")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Counts a waiter for as long as it lives, also when its future is dropped mid-wait.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DeliveryQueue {
    pub(crate) fn new(capacity: usize, pool: Arc<EnvelopePool>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            writable: Notify::new(),
            capacity: capacity.max(1),
            pool,
            scheduled: AtomicUsize::new(0),
            waiting_consumers: AtomicUsize::new(0),
            waiting_publishers: AtomicUsize::new(0),
        }
    }

    /// Messages waiting: ready ones and redeliveries scheduled for later.
    pub(crate) fn backlog(&self) -> usize {
        lock(&self.state).ready.len() + self.scheduled.load(Ordering::Acquire)
    }

    /// Puts a redelivery at the front after `delay` (on the current tokio runtime).
    pub(crate) fn requeue_after(
        self: &Arc<Self>,
        delivery: Delivery,
        delay: std::time::Duration,
        runtime: &tokio::runtime::Handle,
    ) {
        self.scheduled.fetch_add(1, Ordering::AcqRel);
        let queue = Arc::clone(self);
        runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            queue.requeue(delivery);
            queue.scheduled.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Returns a settled envelope to the server's pool.
    pub(crate) fn recycle(&self, envelope: Arc<Envelope>) {
        self.pool.recycle(envelope);
    }

    fn wake_a_consumer(&self) {
        if self.waiting_consumers.load(Ordering::SeqCst) > 0 {
            self.readable.notify_one();
        }
    }

    /// Appends without waiting; gives the delivery back if the queue is full.
    pub(crate) fn try_push(&self, delivery: Delivery) -> Result<(), (PushError, Delivery)> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err((PushError::Closed, delivery));
        }
        if state.ready.len() >= self.capacity {
            return Err((PushError::Full, delivery));
        }
        state.ready.push_back(delivery);
        drop(state);
        self.wake_a_consumer();
        Ok(())
    }

    /// Appends, waiting for room until `deadline`.
    pub(crate) async fn push(
        &self,
        mut delivery: Delivery,
        deadline: Instant,
    ) -> Result<(), PushError> {
        let _waiting = Waiting::new(&self.waiting_publishers);
        loop {
            let mut room = pin!(self.writable.notified());
            room.as_mut().enable();
            match self.try_push(delivery) {
                Ok(()) => return Ok(()),
                Err((PushError::Closed, _)) => return Err(PushError::Closed),
                Err((PushError::Full, back)) => delivery = back,
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(PushError::Full);
            }
        }
    }

    /// Appends regardless of the bound (transactions commit all or nothing).
    pub(crate) fn push_unbounded(&self, delivery: Delivery) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        state.ready.push_back(delivery);
        drop(state);
        self.wake_a_consumer();
        true
    }

    /// Puts a redelivery at the front, regardless of the bound. Dropped if closed.
    pub(crate) fn requeue(&self, delivery: Delivery) {
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        state.ready.push_front(delivery);
        drop(state);
        self.wake_a_consumer();
    }

    /// Takes the next delivery without waiting.
    pub(crate) fn try_pop(&self) -> Option<Delivery> {
        self.take_front(lock(&self.state))
    }

    fn take_front(&self, mut state: MutexGuard<'_, State>) -> Option<Delivery> {
        let delivery = state.ready.pop_front()?;
        let more = !state.ready.is_empty();
        drop(state);
        if self.waiting_publishers.load(Ordering::SeqCst) > 0 {
            self.writable.notify_one();
        }
        if more {
            // Hand the wake-up on, so a second waiting consumer sees the backlog too.
            self.wake_a_consumer();
        }
        Some(delivery)
    }

    /// The next delivery if one is ready; `Err(())` once the queue is closed or `stop` is set.
    pub(crate) fn ready_or_stopped(&self, stop: &AtomicBool) -> Result<Option<Delivery>, ()> {
        let state = lock(&self.state);
        if stop.load(Ordering::Acquire) || state.closed {
            return Err(());
        }
        Ok(self.take_front(state))
    }

    /// Waits for the next delivery; `None` once the queue is closed or `stop` is set.
    pub(crate) async fn pop(&self, stop: &AtomicBool) -> Option<Delivery> {
        // A ready delivery is taken without registering for a wake-up.
        if let Some(delivery) = self.ready_or_stopped(stop).ok()? {
            return Some(delivery);
        }
        let _waiting = Waiting::new(&self.waiting_consumers);
        loop {
            let mut ready = pin!(self.readable.notified());
            ready.as_mut().enable();
            match self.ready_or_stopped(stop) {
                Err(()) => return None,
                Ok(Some(delivery)) => return Some(delivery),
                Ok(None) => ready.await,
            }
        }
    }

    /// Wakes every waiting consumer so they re-check their stop flag.
    pub(crate) fn wake_consumers(&self) {
        self.readable.notify_waiters();
    }

    /// Closes the queue: waiting consumers end, pending deliveries are discarded.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.ready.clear();
        drop(state);
        self.readable.notify_waiters();
        self.writable.notify_waiters();
    }
}
