//! The in-process "server": the route table shared by every connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::time::Instant;

use super::envelope::Envelope;
use super::message::Redelivery;
use super::queue::{DeliveryQueue, PushError};
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

/// The queues a publish found full (rare: the first needs no allocation, a second one a
/// `Vec`, made only then).
#[derive(Default)]
pub(crate) struct FullQueues {
    first: Option<Arc<DeliveryQueue>>,
    more: Vec<Arc<DeliveryQueue>>,
}

impl FullQueues {
    #[cold]
    fn note(&mut self, route: &Route) {
        let queue = Arc::clone(&route.queue);
        match self.first {
            None => self.first = Some(queue),
            Some(_) => self.more.push(queue),
        }
    }
}

pub(crate) struct Hub {
    pub(crate) matcher: Box<dyn NameMatcher>,
    pub(crate) config: MemoryConfig,
    pub(crate) redelivery: Redelivery,
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
        Self {
            matcher,
            config,
            redelivery,
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

    /// A new route for `pattern`, with its own queue.
    fn route(&self, key: RouteKey, pattern: &str) -> Route {
        let pattern: Arc<str> = pattern.into();
        let literal = self.matcher.is_literal(&pattern);
        // A literal route's messages all have its pattern as their name: its envelopes
        // share the pattern rather than copy the name.
        let literal_name = literal.then(|| Arc::clone(&pattern));
        Route {
            key,
            pattern,
            literal,
            queue: DeliveryQueue::new(self.config.queue_capacity, self.redelivery, literal_name),
            members: 1,
        }
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
            let route = self.route(key.clone(), pattern);
            let queue = Arc::clone(&route.queue);
            routes.push(route);
            return Ok((key, queue));
        }
        let key = RouteKey::FanOut(self.next_id());
        let route = self.route(key.clone(), pattern);
        let queue = Arc::clone(&route.queue);
        routes.push(route);
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
            crate::matching::same_name(&route.pattern, name)
        } else {
            self.matcher.matches(&route.pattern, name)
        }
    }

    /// Validates `msg`'s name and delivers a copy of it to every matching queue with
    /// room, without waiting: the whole publish, unless a queue is full
    /// ([`deliver_when_room`](Self::deliver_when_room) does the rest). Not `async`, so the
    /// common case builds no future state.
    ///
    /// The queues it found full are noted in `full`; the error is why the name is invalid.
    #[inline(always)]
    pub(crate) fn deliver(
        &self,
        msg: &OutgoingMessage<'_>,
        full: &mut Option<FullQueues>,
    ) -> Result<(), String> {
        let name = msg.name();
        let routes = self.read();
        // A name equal to a literal route is valid (that pattern was validated); any other
        // name is validated once, before its first delivery.
        let mut valid = false;
        for route in routes.iter() {
            if !self.route_matches(route, name) {
                continue;
            }
            if !route.literal && !valid {
                self.matcher.validate_name(name)?;
            }
            valid = true;
            if let Err(PushError::Full) = route.queue.try_push(msg) {
                full.get_or_insert_default().note(route);
            }
        }
        if !valid {
            // Nobody listens, but a bad name is still the publisher's error.
            self.matcher.validate_name(name)?;
        }
        Ok(())
    }

    /// Waits for room in the queues that were full, up to the publish timeout.
    pub(crate) async fn deliver_when_room(
        &self,
        msg: &OutgoingMessage<'_>,
        full: FullQueues,
    ) -> Result<(), MemoryError> {
        let deadline = Instant::now() + self.config.publish_timeout;
        for queue in full.first.into_iter().chain(full.more) {
            if let Err(PushError::Full) = queue.push(msg, deadline).await {
                return Err(MemoryError::Backpressure {
                    name: msg.name().to_owned(),
                    waited: self.config.publish_timeout,
                });
            }
        }
        Ok(())
    }

    /// Delivers a committed transaction: every staged message to every matching route,
    /// at once.
    pub(crate) fn publish_all(&self, staged: &[Envelope]) {
        let routes = self.read();
        for envelope in staged {
            let msg = envelope.outgoing();
            for route in routes.iter().filter(|r| self.route_matches(r, msg.name())) {
                route.queue.push_unbounded(&msg);
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
