//! A bounded multi-consumer queue of deliveries: the storage of one subscription or one
//! consumer group.
//!
//! Publishers wait for room (back-pressure); redeliveries go to the front and ignore the
//! bound, so settling a message never waits and never fails.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::envelope::{Envelope, EnvelopeRing};
use super::message::Redelivery;
use crate::OutgoingMessage;

/// How many deliveries taken ahead a consumer hands out between two wake-ups of the
/// publishers waiting for room.
const ROOM_WAKE_EVERY: usize = 16;

/// How many envelopes a queue keeps for reuse beyond its capacity: those of messages
/// being handled, or waiting for a delayed redelivery, while the queue fills up again.
const RING_SLACK: usize = 64;

/// One delivery of an envelope to its queue: the envelope itself, which belongs to one
/// queue and is delivered once at a time, so it also counts the redeliveries. A pointer,
/// cheap to move through the queue and the consumer's stream. Not `Clone`: a second
/// delivery of the same envelope would share its redelivery count.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) envelope: Arc<Envelope>,
}

/// Why a push did not happen.
pub(crate) enum PushError {
    /// The queue is closed (its subscriber is gone).
    Closed,
    /// The queue stayed full until the deadline.
    Full,
}

struct State {
    ready: VecDeque<Delivery>,
    /// Where publishes to this queue get their envelopes.
    ring: EnvelopeRing,
    closed: bool,
}

pub(crate) struct DeliveryQueue {
    state: Mutex<State>,
    readable: Notify,
    writable: Notify,
    capacity: usize,
    /// Whether settling can redeliver.
    pub(crate) redelivery: Redelivery,
    /// Redeliveries waiting for their delay.
    scheduled: AtomicUsize,
    /// Deliveries taken ahead by the subscriber (see [`take_ready`](Self::take_ready)),
    /// not yet handed out: still backlog, and still counted against the capacity.
    prefetched: AtomicUsize,
    /// Consumers and publishers about to wait or waiting: a wake-up is sent only when
    /// someone may need it. Each raises its count before looking at the state, so a change
    /// made after that look always sees the count.
    waiting_consumers: AtomicUsize,
    waiting_publishers: AtomicUsize,
}

// `parking_lot`: no poisoning (a panic while holding the lock leaves a consistent
// VecDeque anyway), and a cheaper uncontended lock than `std`'s on this per-message path.
#[inline]
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock()
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
    /// A queue for a route; `literal_name`, when the route is literal, is the name of
    /// every message it receives.
    pub(crate) fn new(
        capacity: usize,
        redelivery: Redelivery,
        literal_name: Option<Arc<str>>,
    ) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new_cyclic(|queue| Self {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                // Room for a full queue and the messages its consumers hold meanwhile.
                ring: EnvelopeRing::new(
                    capacity.saturating_add(RING_SLACK),
                    Weak::clone(queue),
                    literal_name,
                ),
                closed: false,
            }),
            readable: Notify::new(),
            writable: Notify::new(),
            capacity,
            redelivery,
            scheduled: AtomicUsize::new(0),
            prefetched: AtomicUsize::new(0),
            waiting_consumers: AtomicUsize::new(0),
            waiting_publishers: AtomicUsize::new(0),
        })
    }

    /// Messages waiting: ready ones and redeliveries scheduled for later.
    pub(crate) fn backlog(&self) -> usize {
        lock(&self.state).ready.len()
            + self.scheduled.load(Ordering::Acquire)
            + self.prefetched.load(Ordering::Acquire)
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

    fn wake_a_consumer(&self) {
        if self.waiting_consumers.load(Ordering::SeqCst) > 0 {
            self.readable.notify_one();
        }
    }

    /// Appends a copy of `msg` without waiting, unless the queue is full or closed.
    #[inline(always)]
    pub(crate) fn try_push(&self, msg: &OutgoingMessage<'_>) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        let len = state.ready.len();
        if len + self.prefetched.load(Ordering::SeqCst) >= self.capacity {
            return Err(PushError::Full);
        }
        let envelope = state.ring.envelope(msg);
        state.ready.push_back(Delivery { envelope });
        drop(state);
        // A consumer only waits after finding the queue empty, so only the push that ends
        // the emptiness needs to wake one (each woken consumer hands the wake-up on while
        // more remain, see `take_front`).
        if len == 0 {
            self.wake_a_consumer();
        }
        Ok(())
    }

    /// Appends a copy of `msg`, waiting for room until `deadline`.
    pub(crate) async fn push(
        &self,
        msg: &OutgoingMessage<'_>,
        deadline: Instant,
    ) -> Result<(), PushError> {
        let _waiting = Waiting::new(&self.waiting_publishers);
        loop {
            let mut room = pin!(self.writable.notified());
            room.as_mut().enable();
            match self.try_push(msg) {
                Ok(()) => {
                    // Consumers wake one publisher when the queue stops being full; the
                    // woken one passes the wake-up on while there is room, so every
                    // waiting publisher gets its turn.
                    if self.waiting_publishers.load(Ordering::SeqCst) > 1 && self.has_room() {
                        self.writable.notify_one();
                    }
                    return Ok(());
                }
                Err(PushError::Closed) => return Err(PushError::Closed),
                Err(PushError::Full) => {}
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(PushError::Full);
            }
        }
    }

    fn has_room(&self) -> bool {
        lock(&self.state).ready.len() + self.prefetched.load(Ordering::SeqCst) < self.capacity
    }

    /// Appends a copy of `msg` regardless of the bound (transactions commit all or
    /// nothing).
    pub(crate) fn push_unbounded(&self, msg: &OutgoingMessage<'_>) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        let envelope = state.ring.envelope(msg);
        state.ready.push_back(Delivery { envelope });
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
        self.take_front(lock(&self.state), false)
    }

    /// Pops the front delivery and releases the lock. `counted`: the caller is itself
    /// one of the waiting consumers, so it does not hand a wake-up on to itself.
    fn take_front(&self, mut state: MutexGuard<'_, State>, counted: bool) -> Option<Delivery> {
        let len = state.ready.len();
        let delivery = state.ready.pop_front()?;
        drop(state);
        let occupied = len + self.prefetched.load(Ordering::SeqCst);
        self.wake_after_taking(occupied, len - 1, counted);
        Some(delivery)
    }

    /// The wake-ups owed after one delivery was handed out of a queue that held
    /// `occupied` (ready and taken ahead), leaving `remaining` ready. Publishers wait only
    /// on a full queue: wake one as it stops being full (the woken publisher passes the
    /// wake-up on, see `push`). A consumer woken for a backlog hands the wake-up on, so a
    /// second waiting consumer sees what remains.
    fn wake_after_taking(&self, occupied: usize, remaining: usize, counted: bool) {
        if occupied == self.capacity && self.waiting_publishers.load(Ordering::SeqCst) > 0 {
            self.writable.notify_one();
        }
        if remaining > 0 && self.waiting_consumers.load(Ordering::SeqCst) > usize::from(counted) {
            self.readable.notify_one();
        }
    }

    /// The next delivery if one is ready; `Err(())` once the queue is closed or `stop` is set.
    pub(crate) fn ready_or_stopped(&self, stop: &AtomicBool) -> Result<Option<Delivery>, ()> {
        self.ready_or_stopped_as(stop, false)
    }

    /// Like [`ready_or_stopped`](Self::ready_or_stopped), but with `ahead` takes every
    /// ready delivery at once into the empty `buffer`, next one last (so handing one out
    /// is a `pop`), trading storage with the queue: for a consumer that is the queue's
    /// only one (a fan-out subscription), one lock and no allocation per batch rather than
    /// a lock per message. Deliveries taken ahead count as backlog and against the
    /// capacity until [`handed_out`](Self::handed_out), so the bound still holds.
    #[inline]
    pub(crate) fn take_ready(
        &self,
        stop: &AtomicBool,
        buffer: &mut Vec<Delivery>,
        ahead: bool,
    ) -> Result<Option<Delivery>, ()> {
        debug_assert!(
            buffer.is_empty(),
            "taken ahead only once the buffer is empty"
        );
        let mut state = lock(&self.state);
        if stop.load(Ordering::Acquire) || state.closed {
            return Err(());
        }
        let len = state.ready.len();
        if !ahead || len < 2 {
            return Ok(self.take_front(state, false));
        }
        // The buffer's storage becomes the queue's: no allocation either way.
        let taken = std::mem::replace(&mut state.ready, VecDeque::from(std::mem::take(buffer)));
        let before = self.prefetched.fetch_add(len - 1, Ordering::SeqCst);
        drop(state);
        // The room grew by the one handed out, as with a single take.
        self.wake_after_taking(len + before, 0, false);
        *buffer = Vec::from(taken);
        buffer.reverse();
        Ok(buffer.pop())
    }

    /// A delivery taken ahead leaves the backlog: it is being handed to the consumer.
    /// Publishers waiting for room are woken every [`ROOM_WAKE_EVERY`] hand-outs, and at
    /// each of the last ones: without the lock the exact moment the queue stops being full
    /// is not known, and a wake-up per message would cost more than the message.
    #[inline]
    pub(crate) fn handed_out(&self) {
        let left = self.prefetched.fetch_sub(1, Ordering::SeqCst) - 1;
        let due = left < ROOM_WAKE_EVERY || left.is_multiple_of(ROOM_WAKE_EVERY);
        if due && self.waiting_publishers.load(Ordering::SeqCst) > 0 {
            self.writable.notify_one();
        }
    }

    /// Deliveries taken ahead that will never be handed out (their subscriber is gone).
    pub(crate) fn forget_prefetched(&self, count: usize) {
        self.prefetched.fetch_sub(count, Ordering::SeqCst);
        self.writable.notify_waiters();
    }

    fn ready_or_stopped_as(
        &self,
        stop: &AtomicBool,
        counted: bool,
    ) -> Result<Option<Delivery>, ()> {
        let state = lock(&self.state);
        if stop.load(Ordering::Acquire) || state.closed {
            return Err(());
        }
        Ok(self.take_front(state, counted))
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
            match self.ready_or_stopped_as(stop, true) {
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
        state.ring.clear();
        drop(state);
        self.readable.notify_waiters();
        self.writable.notify_waiters();
    }
}
