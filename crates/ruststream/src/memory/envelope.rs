//! The stored form of a published message, and the pool that recycles it so the steady
//! publish-deliver-ack path allocates nothing.

use std::sync::{Arc, Mutex, PoisonError};

use crate::{Headers, OutgoingMessage};

/// A published message as stored: shared by every subscription it reaches.
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    pub(crate) name: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) headers: Headers,
    key: Option<Vec<u8>>,
    reply_to: Option<String>,
}

/// What an emptied [`MemoryMessage`](super::MemoryMessage) reads (never reached in practice).
pub(crate) static EMPTY_ENVELOPE: Envelope = Envelope {
    name: String::new(),
    payload: Vec::new(),
    headers: Headers::new(),
    key: None,
    reply_to: None,
};

impl Envelope {
    /// Overwrites this envelope with `msg`, reusing its buffers.
    #[inline]
    fn fill(&mut self, msg: &OutgoingMessage<'_>) {
        self.name.clear();
        self.name.push_str(msg.name());
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

    #[inline]
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    #[inline]
    pub(crate) fn reply_to(&self) -> Option<&str> {
        self.reply_to.as_deref()
    }
}

/// Envelopes whose last delivery was settled, kept for reuse.
#[derive(Debug)]
pub(crate) struct EnvelopePool {
    free: Mutex<Vec<Arc<Envelope>>>,
    limit: usize,
}

/// Buffers larger than this are freed rather than pooled, so one big message does not pin
/// its memory for the life of the broker.
const LARGEST_POOLED_PAYLOAD: usize = 64 * 1024;

impl EnvelopePool {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            limit,
        }
    }

    /// An envelope holding a copy of `msg`: a recycled one when available.
    #[inline]
    pub(crate) fn envelope(&self, msg: &OutgoingMessage<'_>) -> Arc<Envelope> {
        let recycled = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut envelope = recycled.unwrap_or_default();
        match Arc::get_mut(&mut envelope) {
            Some(unique) => unique.fill(msg),
            None => {
                let mut fresh = Envelope::default();
                fresh.fill(msg);
                envelope = Arc::new(fresh);
            }
        }
        envelope
    }

    /// Takes back an envelope if this was its last reference.
    #[inline]
    pub(crate) fn recycle(&self, envelope: Arc<Envelope>) {
        // No `Weak` to an envelope is ever made, so one strong reference means ours alone.
        if Arc::strong_count(&envelope) != 1 {
            return; // still delivered elsewhere (fan-out) or queued for redelivery
        }
        if envelope.payload.capacity() > LARGEST_POOLED_PAYLOAD {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < self.limit {
            free.push(envelope);
        }
    }
}
