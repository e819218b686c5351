//! [`Health`]: whether a running app is live and ready, for probes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Whether a running app is ready: every broker connected and every subscription
/// consuming. Cheap to clone; every clone sees the same app.
///
/// The runtime keeps it up to date: a broker is up once it has connected and until the
/// app shuts it down; a subscription is up while its stream is being read and down while
/// it is subscribing again after a failure (a dropped connection, say). The app is ready
/// only between the end of its start (after-startup hooks included) and the beginning of
/// its shutdown. [`RunningApp::health`](super::RunningApp::health) hands one out;
/// the HTTP endpoint (feature `http`) serves it at `/health/ready`.
#[derive(Clone, Default)]
pub struct Health(Arc<Inner>);

#[derive(Default)]
struct Inner {
    started: AtomicBool,
    stopping: AtomicBool,
    brokers: Mutex<Vec<Arc<Flag>>>,
    subscriptions: Mutex<Vec<Arc<Flag>>>,
}

/// One component's up/down flag.
#[derive(Debug)]
pub(crate) struct Flag {
    name: String,
    up: AtomicBool,
}

impl Flag {
    pub(crate) fn set(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// One broker or subscription in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Component {
    /// A broker's messaging system (`memory`, `nats`...), or a subscription's
    /// `handler (destination)`. Never a URL.
    pub name: String,
    /// Connected (a broker) or consuming (a subscription).
    pub up: bool,
}

/// What [`Health::report`] says: the verdict and each component.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// Whether the app is ready (see [`Health`]).
    pub ready: bool,
    /// Whether the start has finished.
    pub started: bool,
    /// Whether the shutdown has begun.
    pub stopping: bool,
    /// The brokers, in the order added.
    pub brokers: Vec<Component>,
    /// The subscriptions, in the order started.
    pub subscriptions: Vec<Component>,
}

impl Health {
    /// Whether the app is ready: started, not stopping, every broker connected and every
    /// subscription consuming.
    pub fn is_ready(&self) -> bool {
        let inner = &self.0;
        inner.started.load(Ordering::Acquire)
            && !inner.stopping.load(Ordering::Acquire)
            && all_up(&inner.brokers)
            && all_up(&inner.subscriptions)
    }

    /// The verdict with each broker and subscription.
    pub fn report(&self) -> HealthReport {
        let inner = &self.0;
        HealthReport {
            ready: self.is_ready(),
            started: inner.started.load(Ordering::Acquire),
            stopping: inner.stopping.load(Ordering::Acquire),
            brokers: components(&inner.brokers),
            subscriptions: components(&inner.subscriptions),
        }
    }

    /// Registers a broker, down until it connects.
    pub(crate) fn broker(&self, system: &str) -> Arc<Flag> {
        register(&self.0.brokers, system.to_owned())
    }

    /// Registers a subscription, down until it consumes.
    pub(crate) fn subscription(&self, handler: &str, destination: &str) -> Arc<Flag> {
        let name = if handler == destination {
            handler.to_owned()
        } else {
            format!("{handler} ({destination})")
        };
        register(&self.0.subscriptions, name)
    }

    pub(crate) fn set_started(&self) {
        self.0.started.store(true, Ordering::Release);
    }

    pub(crate) fn set_stopping(&self) {
        self.0.stopping.store(true, Ordering::Release);
    }
}

fn register(list: &Mutex<Vec<Arc<Flag>>>, name: String) -> Arc<Flag> {
    let flag = Arc::new(Flag {
        name,
        up: AtomicBool::new(false),
    });
    list.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::clone(&flag));
    flag
}

fn all_up(list: &Mutex<Vec<Arc<Flag>>>) -> bool {
    list.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .all(|flag| flag.is_up())
}

fn components(list: &Mutex<Vec<Arc<Flag>>>) -> Vec<Component> {
    list.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|flag| Component {
            name: flag.name.clone(),
            up: flag.is_up(),
        })
        .collect()
}
