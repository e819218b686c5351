//! The stored form of a published message, and the pool that recycles it so the steady
//! publish-deliver-ack path allocates nothing.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Headers, OutgoingMessage};

/// A published message as stored: shared by every subscription it reaches.
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    /// The name, when it was copied (see `shared_name`).
    name: String,
    /// The name as the literal route that received it spells it: shared rather than
    /// copied, the common case (and a recycled envelope usually holds the same one).
    shared_name: Option<Arc<str>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) headers: Headers,
    key: Option<Vec<u8>>,
    reply_to: Option<String>,
}

/// What an emptied [`MemoryMessage`](super::MemoryMessage) reads (never reached in practice).
pub(crate) static EMPTY_ENVELOPE: Envelope = Envelope {
    name: String::new(),
    shared_name: None,
    payload: Vec::new(),
    headers: Headers::new(),
    key: None,
    reply_to: None,
};

impl Envelope {
    /// Overwrites this envelope with `msg`, reusing its buffers. `shared_name`, if given,
    /// is `msg`'s name.
    #[inline(always)]
    fn fill(&mut self, msg: &OutgoingMessage<'_>, shared_name: Option<&Arc<str>>) {
        match shared_name {
            Some(shared) => {
                let same = self
                    .shared_name
                    .as_ref()
                    .is_some_and(|n| Arc::ptr_eq(n, shared));
                if !same {
                    self.shared_name = Some(Arc::clone(shared));
                }
            }
            None => {
                self.shared_name = None;
                self.name.clear();
                self.name.push_str(msg.name());
            }
        }
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

    /// An envelope holding a copy of `msg` (sharing `shared_name`, `msg`'s name, if
    /// given): a recycled one when available.
    #[inline(always)]
    pub(crate) fn envelope(
        &self,
        msg: &OutgoingMessage<'_>,
        shared_name: Option<&Arc<str>>,
    ) -> Arc<Envelope> {
        let recycled = self.free.lock().pop();
        let mut envelope = recycled.unwrap_or_default();
        match Arc::get_mut(&mut envelope) {
            Some(unique) => unique.fill(msg, shared_name),
            None => {
                let mut fresh = Envelope::default();
                fresh.fill(msg, shared_name);
                envelope = Arc::new(fresh);
            }
        }
        envelope
    }

    /// Takes back an envelope if this was its last reference.
    #[inline(always)]
    pub(crate) fn recycle(&self, envelope: Arc<Envelope>) {
        // No `Weak` to an envelope is ever made, so one strong reference means ours alone.
        if Arc::strong_count(&envelope) != 1 {
            return; // still delivered elsewhere (fan-out) or queued for redelivery
        }
        if envelope.payload.capacity() > LARGEST_POOLED_PAYLOAD {
            return;
        }
        let mut free = self.free.lock();
        if free.len() < self.limit {
            free.push(envelope);
        }
    }
}
