//! Prometheus metrics of every message (feature `metrics`), with prometheus-client.
//!
//! [`Metrics`] is an [`Observer`]: install it with [`App::metrics`](crate::runtime::App::metrics)
//! (or [`App::with_metrics`](crate::runtime::App::with_metrics) to keep a handle), and read
//! the text exposition with [`Metrics::encode`] or from the HTTP endpoint's `/metrics`
//! (feature `http`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `ruststream_received_messages_total` | counter | `broker`, `handler`, `destination` |
//! | `ruststream_received_bytes_total` | counter | `broker`, `handler`, `destination` |
//! | `ruststream_processed_messages_total` | counter | `broker`, `handler`, `destination`, `status` |
//! | `ruststream_processing_duration_seconds` | histogram | `broker`, `handler`, `destination` |
//! | `ruststream_in_flight_messages` | gauge | `broker`, `handler`, `destination` |
//! | `ruststream_exceptions_total` | counter | `broker`, `handler`, `destination`, `type` |
//! | `ruststream_retries_total` | counter | `broker`, `handler`, `destination`, `mode` |
//! | `ruststream_dead_letters_total` | counter | `broker`, `handler`, `destination` |
//! | `ruststream_decode_failures_total` | counter | `broker`, `handler`, `destination` |
//! | `ruststream_ack_failures_total` | counter | `broker`, `handler`, `destination` |
//! | `ruststream_published_messages_total` | counter | `broker`, `destination`, `status` |
//! | `ruststream_publish_duration_seconds` | histogram | `broker`, `destination` |
//!
//! Every series also carries `app`, the app's title. `status` of a processed message is
//! how it was settled: `acked`, `retried` (handed back to the broker for another
//! attempt), `rejected` (dropped for good), `dead_lettered`, `unsettled` (left for the
//! broker to redeliver: a `Stop` policy, or shutdown) or `retry_unsupported` (a retry
//! asked of a broker that cannot redeliver: the message will not come back). `type` of an exception is `decode` (an argument did not extract, such
//! as a payload that did not decode), `error` (the handler returned an error) or `panic`.
//! A retry's `mode` is `redeliver` (`nack(true)`), `delayed` (`nack_after`) or
//! `unsupported` (asked of a broker that cannot redeliver). An ack failure is an ack the
//! broker confirms with a round trip (NATS JetStream with confirmed acks, for example)
//! that did not succeed. A published message's `status` is `ok` or `error`.
//!
//! No label can carry a credential: `broker` is the messaging system taken from the
//! broker's type ([`system_of`](crate::runtime::system_of)), `destination` a subject,
//! topic or queue name, `handler` the subscriber's name. Published destinations are
//! capped at [`MAX_PUBLISH_DESTINATIONS`] per broker (reply inboxes are often one per
//! request); past that, new ones are counted under `destination="_other"`.
//!
//! The handles of each subscription and destination are looked up once and cached, so
//! recording a message allocates nothing.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::runtime::{Handled, Message, Observer, PublishAttempt, Settlement, Subscription};

/// The content type of [`Metrics::encode`]'s text: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of [`Metrics::encode_openmetrics`]'s text: OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// At most this many published destinations per broker get a series of their own.
pub const MAX_PUBLISH_DESTINATIONS: usize = 1000;

/// Durations from 0.5 ms to about 16 s, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HandlerLabels {
    broker: String,
    handler: String,
    destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    broker: String,
    handler: String,
    destination: String,
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExceptionLabels {
    broker: String,
    handler: String,
    destination: String,
    r#type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RetryLabels {
    broker: String,
    handler: String,
    destination: String,
    mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PublishLabels {
    broker: String,
    destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PublishStatusLabels {
    broker: String,
    destination: String,
    status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The settlement statuses, in [`status_index`] order.
const STATUSES: [&str; 6] = [
    "acked",
    "retried",
    "rejected",
    "dead_lettered",
    "unsettled",
    "retry_unsupported",
];

/// The exception types, in [`exception_index`] order.
const EXCEPTIONS: [&str; 3] = ["decode", "error", "panic"];

fn status_index(settlement: Settlement) -> usize {
    match settlement {
        Settlement::Acked => 0,
        Settlement::Retried { .. } => 1,
        Settlement::Rejected => 2,
        Settlement::DeadLettered => 3,
        Settlement::LeftUnsettled => 4,
        Settlement::RetryUnsupported { .. } => 5,
    }
}

/// Which exception a handler call was, if any.
fn exception_index(handled: Handled<'_>) -> Option<usize> {
    match handled {
        Handled::Rejected(_) => Some(0),
        Handled::Failed(_) => Some(1),
        Handled::Panicked(_) => Some(2),
        _ => None,
    }
}

/// The retry modes, in [`retry_index`] order.
const RETRIES: [&str; 3] = ["redeliver", "delayed", "unsupported"];

/// Which retry a settlement was, if any.
fn retry_index(settlement: Settlement) -> Option<usize> {
    match settlement {
        Settlement::Retried { delay: None } => Some(0),
        Settlement::Retried { delay: Some(_) } => Some(1),
        Settlement::RetryUnsupported { .. } => Some(2),
        _ => None,
    }
}

/// The series of one subscription.
struct HandlerSeries {
    received: Counter,
    received_bytes: Counter,
    duration: Histogram,
    in_flight: Gauge,
    processed: [Counter; STATUSES.len()],
    exceptions: [Counter; EXCEPTIONS.len()],
    retries: [Counter; RETRIES.len()],
    dead_letters: Counter,
    decode_failures: Counter,
    ack_failures: Counter,
}

/// The series of one published destination.
struct PublishSeries {
    ok: Counter,
    error: Counter,
    duration: Histogram,
}

struct Families {
    received: Family<HandlerLabels, Counter>,
    received_bytes: Family<HandlerLabels, Counter>,
    processed: Family<StatusLabels, Counter>,
    duration: HistogramFamily<HandlerLabels>,
    in_flight: Family<HandlerLabels, Gauge>,
    exceptions: Family<ExceptionLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    dead_letters: Family<HandlerLabels, Counter>,
    decode_failures: Family<HandlerLabels, Counter>,
    ack_failures: Family<HandlerLabels, Counter>,
    published: Family<PublishStatusLabels, Counter>,
    publish_duration: HistogramFamily<PublishLabels>,
}

/// system -> handler -> destination -> series.
type HandlerCache = HashMap<&'static str, HashMap<String, HashMap<String, Arc<HandlerSeries>>>>;
/// system -> destination -> series.
type PublishCache = HashMap<String, HashMap<String, Arc<PublishSeries>>>;

thread_local! {
    /// The series this thread recorded last, by (metrics, subscription id): a worker
    /// handles one subscription's messages one after another, so most calls find theirs
    /// here without a lock. Subscription ids are never reused, so a match is exact.
    static LAST: RefCell<Option<(usize, u64, Arc<HandlerSeries>)>> = const { RefCell::new(None) };
}

struct Inner {
    registry: Registry,
    families: Families,
    handlers: RwLock<HandlerCache>,
    publishes: RwLock<PublishCache>,
}

/// Prometheus metrics of an app's messages: an [`Observer`] that counts what it sees.
/// Cheap to clone; clones share the registry.
///
/// ```
/// use ruststream::metrics::Metrics;
///
/// let metrics = Metrics::new("orders");
/// // A family shows up with its first series: a subscription's first message.
/// assert!(!metrics.encode().unwrap().contains("ruststream_received"));
/// assert!(metrics.encode_openmetrics().unwrap().ends_with("# EOF\n"));
/// ```
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics of the app titled `app` (the `app` label of every series), in a registry
    /// of their own with the `ruststream` prefix.
    pub fn new(app: &str) -> Self {
        let labels = [(Cow::Borrowed("app"), Cow::Owned(app.to_owned()))];
        let mut registry = Registry::with_prefix_and_labels("ruststream", labels.into_iter());
        let families = Families {
            received: Family::default(),
            received_bytes: Family::default(),
            processed: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            in_flight: Family::default(),
            exceptions: Family::default(),
            retries: Family::default(),
            dead_letters: Family::default(),
            decode_failures: Family::default(),
            ack_failures: Family::default(),
            published: Family::default(),
            publish_duration: Family::new_with_constructor(duration_histogram),
        };
        registry.register(
            "received_messages",
            "Messages delivered to a handler",
            families.received.clone(),
        );
        registry.register_with_unit(
            "received",
            "Payload bytes delivered to a handler",
            Unit::Bytes,
            families.received_bytes.clone(),
        );
        registry.register(
            "processed_messages",
            "Messages settled, by how (status)",
            families.processed.clone(),
        );
        registry.register_with_unit(
            "processing_duration",
            "How long handlers ran",
            Unit::Seconds,
            families.duration.clone(),
        );
        registry.register(
            "in_flight_messages",
            "Messages whose handler is running",
            families.in_flight.clone(),
        );
        registry.register(
            "exceptions",
            "Handler calls that failed, by type: decode, error, panic",
            families.exceptions.clone(),
        );
        registry.register(
            "retries",
            "Retries asked of the broker, by mode: redeliver (now), delayed, unsupported (the broker cannot redeliver)",
            families.retries.clone(),
        );
        registry.register(
            "dead_letters",
            "Messages published to the dead-letter destination",
            families.dead_letters.clone(),
        );
        registry.register(
            "decode_failures",
            "Messages whose payload or an argument could not be extracted",
            families.decode_failures.clone(),
        );
        registry.register(
            "ack_failures",
            "Acks the broker did not confirm (the message may come again)",
            families.ack_failures.clone(),
        );
        registry.register(
            "published_messages",
            "Messages published (replies, dead letters, producers), by status",
            families.published.clone(),
        );
        registry.register_with_unit(
            "publish_duration",
            "How long publishes took",
            Unit::Seconds,
            families.publish_duration.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            families,
            handlers: RwLock::default(),
            publishes: RwLock::default(),
        }))
    }

    /// The registry the metrics live in (to encode it with others, for example).
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// The text exposition in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]), what
    /// every Prometheus and `promtool check metrics` read: a counter's family is named
    /// with its `_total` suffix.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        Ok(openmetrics_to_prometheus(&self.encode_openmetrics()?))
    }

    /// The text exposition in OpenMetrics 1.0 ([`OPENMETRICS_CONTENT_TYPE`]), as
    /// prometheus-client writes it: a counter's family is named without `_total`, units
    /// are declared, and the text ends with `# EOF`.
    pub fn encode_openmetrics(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry)?;
        Ok(text)
    }

    /// Runs `record` on the series of the message's subscription.
    fn with_handler(&self, message: &Message<'_>, record: impl FnOnce(&HandlerSeries)) {
        self.with_series(&message.subscription(), record);
    }

    /// Runs `record` on the series of `subscription`.
    fn with_series(&self, subscription: &Subscription<'_>, record: impl FnOnce(&HandlerSeries)) {
        let key = (Arc::as_ptr(&self.0) as usize, subscription.id());
        let mut record = Some(record);
        LAST.with_borrow(|last| {
            if let Some((owner, scope, series)) = last
                && (*owner, *scope) == key
                && let Some(record) = record.take()
            {
                record(series);
            }
        });
        let Some(record) = record else {
            return;
        };
        let series = self.handler(subscription);
        record(&series);
        LAST.set(Some((key.0, key.1, series)));
    }

    fn handler(&self, subscription: &Subscription<'_>) -> Arc<HandlerSeries> {
        let (system, handler, destination) = (
            subscription.system,
            subscription.handler,
            subscription.destination,
        );
        {
            let cache = self
                .0
                .handlers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = cache
                .get(system)
                .and_then(|handlers| handlers.get(handler))
                .and_then(|destinations| destinations.get(destination))
            {
                return Arc::clone(series);
            }
        }
        let mut cache = self
            .0
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = cache
            .entry(system)
            .or_default()
            .entry(handler.to_owned())
            .or_default()
            .entry(destination.to_owned())
            .or_insert_with(|| Arc::new(self.handler_series(system, handler, destination)));
        Arc::clone(slot)
    }

    fn handler_series(&self, system: &str, handler: &str, destination: &str) -> HandlerSeries {
        let families = &self.0.families;
        let labels = HandlerLabels {
            broker: system.to_owned(),
            handler: handler.to_owned(),
            destination: destination.to_owned(),
        };
        let status = |status: &str| {
            families.processed.get_or_create_owned(&StatusLabels {
                broker: labels.broker.clone(),
                handler: labels.handler.clone(),
                destination: labels.destination.clone(),
                status: status.to_owned(),
            })
        };
        let exception = |kind: &str| {
            families.exceptions.get_or_create_owned(&ExceptionLabels {
                broker: labels.broker.clone(),
                handler: labels.handler.clone(),
                destination: labels.destination.clone(),
                r#type: kind.to_owned(),
            })
        };
        let retry = |mode: &str| {
            families.retries.get_or_create_owned(&RetryLabels {
                broker: labels.broker.clone(),
                handler: labels.handler.clone(),
                destination: labels.destination.clone(),
                mode: mode.to_owned(),
            })
        };
        HandlerSeries {
            retries: RETRIES.map(retry),
            dead_letters: families.dead_letters.get_or_create_owned(&labels),
            decode_failures: families.decode_failures.get_or_create_owned(&labels),
            ack_failures: families.ack_failures.get_or_create_owned(&labels),
            received: families.received.get_or_create_owned(&labels),
            received_bytes: families.received_bytes.get_or_create_owned(&labels),
            duration: families.duration.get_or_create_owned(&labels),
            in_flight: families.in_flight.get_or_create_owned(&labels),
            processed: STATUSES.map(status),
            exceptions: EXCEPTIONS.map(exception),
        }
    }

    /// The series of a published destination, created on first sight.
    fn publish(&self, system: &str, destination: &str) -> Arc<PublishSeries> {
        {
            let cache = self
                .0
                .publishes
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = cache
                .get(system)
                .and_then(|destinations| destinations.get(destination))
            {
                return Arc::clone(series);
            }
        }
        let mut cache = self
            .0
            .publishes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let destinations = cache.entry(system.to_owned()).or_default();
        let destination = if destinations.len() >= MAX_PUBLISH_DESTINATIONS
            && !destinations.contains_key(destination)
        {
            "_other"
        } else {
            destination
        };
        let families = &self.0.families;
        let series = destinations
            .entry(destination.to_owned())
            .or_insert_with(|| {
                let status = |status: &str| {
                    families
                        .published
                        .get_or_create_owned(&PublishStatusLabels {
                            broker: system.to_owned(),
                            destination: destination.to_owned(),
                            status: status.to_owned(),
                        })
                };
                Arc::new(PublishSeries {
                    ok: status("ok"),
                    error: status("error"),
                    duration: families
                        .publish_duration
                        .get_or_create_owned(&PublishLabels {
                            broker: system.to_owned(),
                            destination: destination.to_owned(),
                        }),
                })
            });
        Arc::clone(series)
    }
}

/// OpenMetrics text to the Prometheus text format 0.0.4: counter families take the
/// `_total` name their samples have, and the `# UNIT` and `# EOF` lines go.
fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(renamed) => out.push_str(&renamed),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn seconds(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64()
}

impl Observer for Metrics {
    fn received(&self, message: &Message<'_>) {
        self.with_handler(message, |series| {
            series.received.inc();
            series.received_bytes.inc_by(message.payload().len() as u64);
            series.in_flight.inc();
        });
    }

    fn handled(&self, message: &Message<'_>, handled: Handled<'_>, elapsed: Duration) {
        self.with_handler(message, |series| {
            series.in_flight.dec();
            series.duration.observe(seconds(elapsed));
            if let Some(index) = exception_index(handled) {
                series.exceptions[index].inc();
                if let Handled::Rejected(_) = handled {
                    series.decode_failures.inc();
                }
            }
        });
    }

    fn settled(&self, message: &Message<'_>, settlement: Settlement) {
        self.with_handler(message, |series| {
            series.processed[status_index(settlement)].inc();
            if let Some(index) = retry_index(settlement) {
                series.retries[index].inc();
            }
            if settlement == Settlement::DeadLettered {
                series.dead_letters.inc();
            }
        });
    }

    fn ack_failed(&self, subscription: &Subscription<'_>, _: &crate::AckError) {
        self.with_series(subscription, |series| {
            series.ack_failures.inc();
        });
    }

    fn published(&self, publication: &PublishAttempt<'_>) {
        let series = self.publish(publication.system, publication.destination());
        match publication.error {
            None => series.ok.inc(),
            Some(_) => series.error.inc(),
        };
        series.duration.observe(seconds(publication.elapsed));
    }
}
