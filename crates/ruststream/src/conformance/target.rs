//! What a broker crate gives the harness: [`ConformanceTarget`], the [`Capabilities`] it
//! declares and the subscription [`Mode`]s it maps onto its own descriptor.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Broker, Publisher, Subscriber, SubscriptionSource};

/// The subscriber type a target's source opens.
pub type SubscriberOf<T> = <<T as ConformanceTarget>::Source as SubscriptionSource<
    <T as ConformanceTarget>::Broker,
>>::Subscriber;

/// The message type a target's subscriber delivers.
pub type MessageOf<T> = <SubscriberOf<T> as Subscriber>::Message;

/// How a check wants to subscribe; the target maps it onto its own descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A subscription of its own that receives every message published to the name
    /// (NATS core subject, Kafka consumer group of one, exclusive RabbitMQ queue...).
    FanOut,
    /// A named subscription whose state the broker keeps under this name: a competing
    /// consumer group, a durable consumer, a persistent session. Every subscriber opened
    /// with the same group name shares it.
    ///
    /// The harness derives the name from [`ConformanceTarget::fresh_name`], with every
    /// character other than an ASCII letter or digit replaced by `_`.
    Group(String),
}

pub use crate::contract::HeaderSupport;

/// What a target promises besides what its subscriptions state: topology (ordering,
/// fan-out, groups, durability), the header details, the payload size, and the timings of
/// the checks. The harness runs the checks of every promised behaviour and reports the
/// others as skipped, naming the flag.
///
/// What a message can do (requeue, delayed requeue, redelivery count, headers, partition
/// key) is not declared here: the harness reads it from the subscriber's own
/// [`Subscriber::capabilities`](crate::Subscriber::capabilities), the statement the runtime
/// settles by, so the two can never disagree.
///
/// Start from [`Capabilities::baseline`] and set what the broker promises:
///
/// ```
/// use std::time::Duration;
/// use ruststream::conformance::Capabilities;
///
/// let capabilities = Capabilities {
///     ordering: true,
///     fan_out: true,
///     competing_consumers: true,
///     header_order: true,
///     duplicate_headers: true,
///     max_payload: 1024 * 1024,
///     ..Capabilities::baseline()
/// };
/// assert!(!capabilities.durable);
/// assert_eq!(capabilities.receive_timeout, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Messages published to one name by one publisher reach one subscriber in publish
    /// order (redeliveries aside).
    pub ordering: bool,
    /// Several [`Mode::FanOut`] subscribers of a name each receive every message.
    pub fan_out: bool,
    /// Several subscribers of one [`Mode::Group`] share its messages: each message goes
    /// to exactly one member. Checks that need a single subscriber open it as a group
    /// when this or `durable` is declared, as [`Mode::FanOut`] otherwise.
    pub competing_consumers: bool,
    /// A group survives its subscribers: a service that shuts its connection down and
    /// comes back with a new connection and the same group name finds every message it
    /// had not acked and every message published meanwhile.
    pub durable: bool,
    /// The broker server itself keeps messages across a restart, and the target can
    /// restart it ([`ConformanceTarget::restart_server`]).
    pub server_restart: bool,
    /// Headers arrive in the order they were published (the broker may add its own).
    pub header_order: bool,
    /// A header name with several values keeps every value, in order.
    pub duplicate_headers: bool,
    /// The size in bytes of the large payload the round-trip check publishes (no
    /// headers). Declare the largest payload the broker promises to carry; `0` skips the
    /// check.
    pub max_payload: usize,
    /// How long to wait for a message that must arrive, redeliveries included.
    pub receive_timeout: Duration,
    /// How long to watch for a message that must not arrive. Longer is stricter and
    /// slower; it must exceed the broker's usual delivery latency.
    pub quiet_period: Duration,
    /// The delay `nack_after` is tested with. A redelivery earlier than this minus a
    /// fifth of it fails the check.
    pub nack_delay: Duration,
    /// The bound on `shutdown` (with an open subscriber and an unsettled message in
    /// hand), on the end of the subscriber's stream after it, and on settling after it.
    pub shutdown_timeout: Duration,
    /// The bound on one whole check: a check still running after it fails with the step
    /// it was at, so a hung broker fails the suite instead of hanging the test.
    pub check_timeout: Duration,
}

impl Capabilities {
    /// Nothing optional is promised: no ordering, fan-out, groups, durability, header
    /// order or large payload. Timings suit a broker on localhost:
    /// receive 5 s, quiet period 500 ms, nack delay 1 s, shutdown 5 s, check 60 s.
    pub const fn baseline() -> Self {
        Self {
            ordering: false,
            fan_out: false,
            competing_consumers: false,
            durable: false,
            server_restart: false,
            header_order: false,
            duplicate_headers: false,
            max_payload: 0,
            receive_timeout: Duration::from_secs(5),
            quiet_period: Duration::from_millis(500),
            nack_delay: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
            check_timeout: Duration::from_secs(60),
        }
    }

    /// Whether single-subscriber checks subscribe with [`Mode::Group`] (groups or
    /// durability declared) rather than [`Mode::FanOut`].
    pub(crate) fn named_subscriptions(&self) -> bool {
        self.competing_consumers || self.durable
    }
}

/// A broker crate's constructors for the conformance harness.
///
/// Implement it on a small struct in the broker crate's tests (holding the server URL,
/// an embedded server, ...) and hand it to [`Suite::new`](super::Suite::new).
pub trait ConformanceTarget: Send + Sync + 'static {
    /// The broker connection type.
    type Broker: Broker + 'static;
    /// The subscription descriptor the checks subscribe with.
    type Source: SubscriptionSource<Self::Broker, Subscriber: 'static> + Send + 'static;
    /// The publisher type.
    type Publisher: Publisher + 'static;

    /// What the broker declares it does; the harness checks exactly that.
    fn capabilities(&self) -> Capabilities;

    /// A fresh, not yet connected connection to the same server on each call. The
    /// harness connects it, and shuts it down when the check is over.
    fn broker(&self) -> impl Future<Output = Self::Broker> + Send;

    /// The descriptor for `name` in `mode`. Subscribing with it must return only once
    /// the subscription is active: a message published after `subscribe` returns is
    /// delivered.
    fn source(&self, name: &str, mode: Mode) -> Self::Source;

    /// A publisher on `broker` (for many brokers, a clone of it).
    fn publisher(&self, broker: &Self::Broker) -> Self::Publisher;

    /// A name no earlier run used, for the check `check` (called once or more per
    /// check). The default is dot-separated lower-case tokens:
    /// `conformance.<check>.<process id>x<start time>.<counter>`. Override it when the
    /// broker's names follow other rules (MQTT topics with `/`, length limits...).
    fn fresh_name(&self, check: &str) -> String {
        static RUN: OnceLock<String> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let run = RUN.get_or_init(|| {
            let started = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis());
            format!("{}x{started:x}", std::process::id())
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("conformance.{check}.{run}.{n}")
    }

    /// Restarts the broker server and returns once it accepts connections again.
    ///
    /// `Ok(true)`: restarted; `Ok(false)`: the target cannot (the default);
    /// `Err(reason)`: the restart failed. Only called when
    /// [`Capabilities::server_restart`] is declared, with no other check running.
    fn restart_server(&self) -> impl Future<Output = Result<bool, String>> + Send {
        async { Ok(false) }
    }

    /// The secrets in the broker's configuration (passwords, tokens, keys). None may
    /// appear in a server description or an error message. Default: none.
    fn credentials(&self) -> Vec<String> {
        Vec::new()
    }
}
