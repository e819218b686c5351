//! The in-process "server": the route table shared by every connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::time::Instant;

use super::envelope::{Envelope, EnvelopePool};
use super::message::Redelivery;
use super::queue::{Delivery, DeliveryQueue, PushError};
use super::{MemoryConfig, MemoryError};
use crate::OutgoingMessage;
use crate::matching::NameMatcher;

/// Identifies a route for removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteKey {
    /// A fan-out subscription: its own queue, removed with it.
    FanOut(u64),
    /// A consumer group: one queue shared by its members, kept while the hub lives so
    /// a member that comes back finds what was published meanwhile.
    Group { pattern: Box<str>, group: Box<str> },
}

struct Route {
    key: RouteKey,
    /// Shared with the envelopes published to it, when literal.
    pattern: Arc<str>,
    /// No wildcard: matches only the name equal to the pattern.
    literal: bool,
    queue: Arc<DeliveryQueue>,
    members: usize,
}

/// The queues a publish found full so far (rare: the first needs no allocation, a second
/// one a `Vec`, made only then).
#[derive(Default)]
struct Full {
    envelope: Option<Arc<Envelope>>,
    first: Option<Arc<DeliveryQueue>>,
    more: Option<Vec<Arc<DeliveryQueue>>>,
}

impl Full {
    /// Pushes without waiting; a full queue is noted with the envelope it gave back.
    #[inline(always)]
    fn push(&mut self, route: &Route, envelope: Arc<Envelope>) {
        let delivery = Delivery {
            envelope,
            redeliveries: 0,
        };
        if let Err((PushError::Full, back)) = route.queue.try_push(delivery) {
            self.note(route, back.envelope);
        }
    }

    #[cold]
    fn note(&mut self, route: &Route, envelope: Arc<Envelope>) {
        self.envelope.get_or_insert(envelope);
        match self.first {
            None => self.first = Some(Arc::clone(&route.queue)),
            Some(_) => self
                .more
                .get_or_insert_with(Vec::new)
                .push(Arc::clone(&route.queue)),
        }
    }

    #[inline(always)]
    fn into_queues(self) -> Option<FullQueues> {
        let (Some(envelope), Some(first)) = (self.envelope, self.first) else {
            return None;
        };
        Some(FullQueues {
            envelope,
            first,
            more: self.more.unwrap_or_default(),
        })
    }
}

/// The queues a publish found full, and the envelope still to go into them.
pub(crate) struct FullQueues {
    envelope: Arc<Envelope>,
    first: Arc<DeliveryQueue>,
    more: Vec<Arc<DeliveryQueue>>,
}

pub(crate) struct Hub {
    pub(crate) matcher: Box<dyn NameMatcher>,
    pub(crate) config: MemoryConfig,
    pub(crate) redelivery: Redelivery,
    pub(crate) pool: Arc<EnvelopePool>,
    routes: RwLock<Vec<Route>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .field("routes", &self.read().len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new(
        matcher: Box<dyn NameMatcher>,
        config: MemoryConfig,
        redelivery: Redelivery,
    ) -> Self {
        let pool_limit = config.queue_capacity.max(64);
        Self {
            matcher,
            config,
            redelivery,
            pool: Arc::new(EnvelopePool::new(pool_limit)),
            routes: RwLock::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }

    #[inline(always)]
    fn read(&self) -> RwLockReadGuard<'_, Vec<Route>> {
        self.routes.read()
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Route>> {
        self.routes.write()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn new_queue(&self) -> Arc<DeliveryQueue> {
        Arc::new(DeliveryQueue::new(
            self.config.queue_capacity,
            Arc::clone(&self.pool),
        ))
    }

    /// Adds a route (or joins a group) and returns its queue.
    pub(crate) fn subscribe(
        &self,
        pattern: &str,
        group: Option<&str>,
    ) -> Result<(RouteKey, Arc<DeliveryQueue>), MemoryError> {
        self.matcher
            .validate_pattern(pattern)
            .map_err(MemoryError::InvalidPattern)?;
        let mut routes = self.write();
        if let Some(group) = group {
            let key = RouteKey::Group {
                pattern: pattern.into(),
                group: group.into(),
            };
            if let Some(route) = routes.iter_mut().find(|r| r.key == key) {
                route.members += 1;
                return Ok((key, Arc::clone(&route.queue)));
            }
            let queue = self.new_queue();
            routes.push(Route {
                key: key.clone(),
                pattern: pattern.into(),
                literal: self.matcher.is_literal(pattern),
                queue: Arc::clone(&queue),
                members: 1,
            });
            return Ok((key, queue));
        }
        let key = RouteKey::FanOut(self.next_id());
        let queue = self.new_queue();
        routes.push(Route {
            key: key.clone(),
            pattern: pattern.into(),
            literal: self.matcher.is_literal(pattern),
            queue: Arc::clone(&queue),
            members: 1,
        });
        Ok((key, queue))
    }

    /// Removes a fan-out route (closing its queue) or leaves a group (keeping its queue).
    pub(crate) fn unsubscribe(&self, key: &RouteKey) {
        let mut routes = self.write();
        let Some(index) = routes.iter().position(|r| r.key == *key) else {
            return;
        };
        match key {
            RouteKey::FanOut(_) => {
                let route = routes.swap_remove(index);
                route.queue.close();
            }
            RouteKey::Group { .. } => {
                routes[index].members = routes[index].members.saturating_sub(1)
            }
        }
    }

    /// Messages waiting in every queue, ready or scheduled for delayed redelivery.
    pub(crate) fn backlog(&self) -> usize {
        self.read().iter().map(|route| route.queue.backlog()).sum()
    }

    /// Whether a subscription with a live member would receive `name` (request-reply).
    pub(crate) fn has_listener(&self, name: &str) -> bool {
        self.read()
            .iter()
            .any(|r| r.members > 0 && self.matcher.matches(&r.pattern, name))
    }

    #[inline(always)]
    fn route_matches(&self, route: &Route, name: &str) -> bool {
        if route.literal {
            *route.pattern == *name
        } else {
            self.matcher.matches(&route.pattern, name)
        }
    }

    /// Validates `msg`'s name, copies it into an envelope and delivers it to every
    /// matching queue with room, without waiting: the whole publish, unless a queue is
    /// full ([`deliver_when_room`](Self::deliver_when_room) does the rest). Not `async`,
    /// so the common case builds no future state.
    #[inline(always)]
    pub(crate) fn deliver(
        &self,
        msg: &OutgoingMessage<'_>,
    ) -> Result<Option<FullQueues>, MemoryError> {
        let name = msg.name();
        let routes = self.read();
        let mut envelope: Option<Arc<Envelope>> = None;
        let mut full = Full::default();
        // Each matching route is delivered to once the next one is found, so the last (in
        // the common case the only one) takes the envelope itself: no clone to drop.
        let mut pending: Option<&Route> = None;
        // A name equal to a literal route is valid (that pattern was validated); any other
        // name is validated once, before its first delivery.
        let mut valid = false;
        for route in routes.iter() {
            if !self.route_matches(route, name) {
                continue;
            }
            if !route.literal && !valid {
                self.matcher
                    .validate_name(name)
                    .map_err(MemoryError::InvalidName)?;
            }
            valid = true;
            if let Some(previous) = pending.replace(route) {
                let shared = envelope.get_or_insert_with(|| self.envelope_for(msg, previous));
                full.push(previous, Arc::clone(shared));
            }
        }
        let Some(last) = pending else {
            // Nobody listens, but a bad name is still the publisher's error.
            self.matcher
                .validate_name(name)
                .map_err(MemoryError::InvalidName)?;
            return Ok(None);
        };
        let envelope = envelope.unwrap_or_else(|| self.envelope_for(msg, last));
        full.push(last, envelope);
        Ok(full.into_queues())
    }

    /// A pooled envelope holding `msg`, sharing the name of `route` if literal.
    #[inline(always)]
    fn envelope_for(&self, msg: &OutgoingMessage<'_>, route: &Route) -> Arc<Envelope> {
        self.pool
            .envelope(msg, route.literal.then_some(&route.pattern))
    }

    /// Waits for room in the queues that were full, up to the publish timeout.
    pub(crate) async fn deliver_when_room(&self, full: FullQueues) -> Result<(), MemoryError> {
        let FullQueues {
            envelope,
            first,
            more,
        } = full;
        let deadline = Instant::now() + self.config.publish_timeout;
        for queue in std::iter::once(first).chain(more) {
            let delivery = Delivery {
                envelope: Arc::clone(&envelope),
                redeliveries: 0,
            };
            if let Err(PushError::Full) = queue.push(delivery, deadline).await {
                return Err(MemoryError::Backpressure {
                    name: envelope.name().to_owned(),
                    waited: self.config.publish_timeout,
                });
            }
        }
        Ok(())
    }

    /// Delivers a committed transaction: every envelope to every matching route, at once.
    pub(crate) fn publish_all(&self, envelopes: Vec<Arc<Envelope>>) {
        let routes = self.read();
        for envelope in envelopes {
            for route in routes
                .iter()
                .filter(|r| self.route_matches(r, envelope.name()))
            {
                route.queue.push_unbounded(Delivery {
                    envelope: Arc::clone(&envelope),
                    redeliveries: 0,
                });
            }
        }
    }
}

/// One subscriber's registration, shared with its connection so `shutdown` can end it.
#[derive(Debug)]
pub(crate) struct SubscriberSlot {
    pub(crate) hub: Arc<Hub>,
    pub(crate) key: RouteKey,
    pub(crate) queue: Arc<DeliveryQueue>,
    pub(crate) stop: AtomicBool,
    registered: AtomicBool,
}

impl SubscriberSlot {
    pub(crate) fn new(hub: Arc<Hub>, key: RouteKey, queue: Arc<DeliveryQueue>) -> Self {
        Self {
            hub,
            key,
            queue,
            stop: AtomicBool::new(false),
            registered: AtomicBool::new(true),
        }
    }

    /// Ends the subscriber's stream and removes its route, once.
    pub(crate) fn release(&self) {
        self.stop.store(true, Ordering::Release);
        if self.registered.swap(false, Ordering::AcqRel) {
            self.hub.unsubscribe(&self.key);
        }
        self.queue.wake_consumers();
    }
}
