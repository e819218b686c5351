//! The stored form of a published message, and the ring in which each queue refills its
//! settled envelopes, so the steady publish-deliver-ack path allocates nothing and settling
//! takes no lock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use super::queue::DeliveryQueue;
use crate::{Headers, OutgoingMessage};

/// A published message as stored by one queue: each matching subscription gets its own
/// copy, so an envelope belongs to one queue and is refilled by it alone.
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    /// The name, when it was copied (see `shared_name`).
    name: String,
    /// The name as the literal route of its queue spells it: shared rather than copied,
    /// the common case, and set once (every message of that queue has that name).
    shared_name: Option<Arc<str>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) headers: Headers,
    key: Option<Vec<u8>>,
    reply_to: Option<String>,
    /// How often its message was redelivered: an envelope belongs to one queue and is
    /// delivered once at a time, so the count can live here (atomic only because the
    /// envelope is shared with the queue's ring).
    redeliveries: AtomicU32,
    /// The queue that filled it, where a redelivery goes. Weak: the queue keeps its
    /// envelopes, and a message outliving its subscription is not redelivered.
    home: Weak<DeliveryQueue>,
}

/// What an emptied [`MemoryMessage`](super::MemoryMessage) reads (never reached in practice).
pub(crate) static EMPTY_ENVELOPE: Envelope = Envelope {
    name: String::new(),
    shared_name: None,
    payload: Vec::new(),
    headers: Headers::new(),
    key: None,
    reply_to: None,
    redeliveries: AtomicU32::new(0),
    home: Weak::new(),
};

impl Envelope {
    /// A copy of `msg`, held apart from any queue (a transaction's staged publish).
    pub(crate) fn copy_of(msg: &OutgoingMessage<'_>) -> Self {
        let mut envelope = Self::default();
        envelope.fill(msg);
        envelope
    }

    /// This envelope as a message to publish (to copy into the queues it reaches).
    pub(crate) fn outgoing(&self) -> OutgoingMessage<'_> {
        let mut msg = OutgoingMessage::new(self.name(), &self.payload).with_headers(&self.headers);
        if let Some(key) = self.key() {
            msg = msg.with_key(key);
        }
        if let Some(reply_to) = self.reply_to() {
            msg = msg.with_reply_to(reply_to);
        }
        msg
    }

    /// Overwrites this envelope with `msg`, reusing its buffers. An envelope that shares
    /// its name (see `shared_name`) keeps it: its queue's route is literal, so every
    /// message it receives has that name.
    #[inline(always)]
    fn fill(&mut self, msg: &OutgoingMessage<'_>) {
        if self.shared_name.is_none() {
            self.name.clear();
            self.name.push_str(msg.name());
        }
        *self.redeliveries.get_mut() = 0;
        self.payload.clear();
        self.payload.extend_from_slice(msg.payload());
        // Most messages carry no headers, key or reply-to: skip the clones then.
        if !(self.headers.is_empty() && msg.headers().is_empty()) {
            self.headers.clone_from(msg.headers());
        }
        if self.key.is_some() || msg.key().is_some() {
            self.key = msg.key().map(<[u8]>::to_vec);
        }
        if self.reply_to.is_some() || msg.reply_to().is_some() {
            self.reply_to = msg.reply_to().map(str::to_owned);
        }
    }

    /// The name it was published to.
    #[inline]
    pub(crate) fn name(&self) -> &str {
        self.shared_name.as_deref().unwrap_or(&self.name)
    }

    #[inline]
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    #[inline]
    pub(crate) fn reply_to(&self) -> Option<&str> {
        self.reply_to.as_deref()
    }

    /// How often its message was redelivered.
    #[inline]
    pub(crate) fn redeliveries(&self) -> u32 {
        self.redeliveries.load(Ordering::Relaxed)
    }

    /// Counts one more redelivery (the message is going back to its queue). Not a
    /// read-modify-write: the one delivery in hand is the only one counting.
    pub(crate) fn redelivered(&self) {
        let count = self.redeliveries();
        self.redeliveries
            .store(count.saturating_add(1), Ordering::Relaxed);
    }

    /// The queue it was delivered from, while that queue exists (a closed one drops what
    /// is put back).
    pub(crate) fn home(&self) -> Option<Arc<DeliveryQueue>> {
        self.home.upgrade()
    }
}

/// The envelopes one queue filled, visited in turn, with one reference to each kept here.
///
/// When that reference is the only one left, the envelope's message is settled for good (a
/// redelivery carries the same envelope, so it stays referenced until then), and the
/// envelope is filled again in place. Settling is just dropping a reference: no lock.
#[derive(Debug)]
pub(crate) struct EnvelopeRing {
    envelopes: Vec<Arc<Envelope>>,
    /// The next one to try: the one filled longest ago, so the likeliest to be settled.
    next: usize,
    /// Envelopes beyond this many (messages held unsettled for long, or redeliveries
    /// waiting) are not kept: they are freed once settled.
    limit: usize,
    /// The queue the envelopes are filled for.
    home: Weak<DeliveryQueue>,
    /// The name of every message of that queue, when its route is literal.
    shared_name: Option<Arc<str>>,
}

/// Envelopes whose payload buffer grew beyond this are not kept, so one big message does
/// not pin its memory for the life of the subscription.
const LARGEST_KEPT_PAYLOAD: usize = 64 * 1024;

impl EnvelopeRing {
    pub(crate) fn new(
        limit: usize,
        home: Weak<DeliveryQueue>,
        shared_name: Option<Arc<str>>,
    ) -> Self {
        Self {
            envelopes: Vec::new(),
            next: 0,
            limit,
            home,
            shared_name,
        }
    }

    /// An envelope holding a copy of `msg`: the next one whose message was settled,
    /// refilled, or a new one.
    #[inline(always)]
    pub(crate) fn envelope(&mut self, msg: &OutgoingMessage<'_>) -> Arc<Envelope> {
        let at = self.next;
        if let Some(envelope) = self.envelopes.get_mut(at)
            && let Some(settled) = Arc::get_mut(envelope)
        {
            settled.fill(msg);
            self.next = at + 1;
            return self.hand_out(at);
        }
        self.envelope_after_wrap(msg)
    }

    /// [`envelope`](Self::envelope) past the end of the ring, or past one still in use
    /// (held by a slow handler, or waiting for its redelivery): that one is passed over
    /// and the one after it tried.
    #[cold]
    fn envelope_after_wrap(&mut self, msg: &OutgoingMessage<'_>) -> Arc<Envelope> {
        let len = self.envelopes.len();
        for _ in 0..len.min(2) {
            let at = if self.next < len { self.next } else { 0 };
            self.next = at + 1;
            if let Some(settled) = Arc::get_mut(&mut self.envelopes[at]) {
                settled.fill(msg);
                return self.hand_out(at);
            }
        }
        self.fresh(msg)
    }

    /// The envelope at `at`, just filled: kept for the next round unless its buffer grew
    /// too large.
    #[inline(always)]
    fn hand_out(&mut self, at: usize) -> Arc<Envelope> {
        if self.envelopes[at].payload.capacity() > LARGEST_KEPT_PAYLOAD {
            return self.envelopes.swap_remove(at);
        }
        Arc::clone(&self.envelopes[at])
    }

    #[cold]
    fn fresh(&mut self, msg: &OutgoingMessage<'_>) -> Arc<Envelope> {
        let mut envelope = Envelope {
            shared_name: self.shared_name.clone(),
            home: Weak::clone(&self.home),
            ..Envelope::default()
        };
        envelope.fill(msg);
        let envelope = Arc::new(envelope);
        if self.envelopes.len() < self.limit && envelope.payload.capacity() <= LARGEST_KEPT_PAYLOAD
        {
            // Visited last: it was filled last.
            let at = self.next.min(self.envelopes.len());
            self.envelopes.insert(at, Arc::clone(&envelope));
            self.next = at + 1;
        }
        envelope
    }

    /// Lets every envelope go (the queue is closed).
    pub(crate) fn clear(&mut self) {
        self.envelopes = Vec::new();
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(limit: usize) -> EnvelopeRing {
        EnvelopeRing::new(limit, Weak::new(), None)
    }

    fn publish(ring: &mut EnvelopeRing, body: &[u8]) -> Arc<Envelope> {
        ring.envelope(&OutgoingMessage::new("orders", body))
    }

    #[test]
    fn a_settled_envelope_is_filled_again() {
        let mut ring = ring(8);
        let first = publish(&mut ring, b"one");
        let address = Arc::as_ptr(&first);
        drop(first); // settled
        let second = publish(&mut ring, b"two");
        assert_eq!(
            Arc::as_ptr(&second),
            address,
            "the settled envelope is reused"
        );
        assert_eq!(second.payload, b"two");
    }

    #[test]
    fn an_envelope_still_held_is_never_overwritten() {
        let mut ring = ring(8);
        let held = publish(&mut ring, b"held");
        for n in 0..100u32 {
            let body = n.to_string();
            let envelope = publish(&mut ring, body.as_bytes());
            assert!(!Arc::ptr_eq(&envelope, &held));
            assert_eq!(envelope.payload, body.as_bytes());
        }
        assert_eq!(held.payload, b"held", "the held message keeps its body");
    }

    #[test]
    fn envelopes_past_the_limit_are_not_kept() {
        let mut ring = ring(2);
        let held: Vec<_> = (0..5).map(|_| publish(&mut ring, b"x")).collect();
        assert_eq!(ring.envelopes.len(), 2);
        drop(held);
        // The two kept ones serve the next publishes without a new envelope.
        let a = publish(&mut ring, b"a");
        let b = publish(&mut ring, b"b");
        assert_eq!(ring.envelopes.len(), 2);
        assert!(ring.envelopes.iter().any(|kept| Arc::ptr_eq(kept, &a)));
        assert!(ring.envelopes.iter().any(|kept| Arc::ptr_eq(kept, &b)));
    }

    #[test]
    fn a_large_payload_is_not_kept() {
        let mut ring = ring(8);
        let large = vec![7u8; LARGEST_KEPT_PAYLOAD + 1];
        let envelope = publish(&mut ring, &large);
        assert!(
            ring.envelopes.is_empty(),
            "a new large envelope is not kept"
        );
        drop(envelope);
        let small = publish(&mut ring, b"small");
        drop(small);
        // A kept envelope refilled with a large payload leaves the ring.
        let refilled = publish(&mut ring, &large);
        assert!(ring.envelopes.is_empty());
        assert_eq!(refilled.payload.len(), large.len());
    }
}
