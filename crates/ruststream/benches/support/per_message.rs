//! The scenarios of the per-message benchmarks, shared by `per_message` (instructions,
//! counted with callgrind) and `per_message_allocations` (heap blocks, counted with dhat).
//!
//! Every scenario handles `n` copies of the small JSON order of SPEC §5 and does the same
//! work per message in user code: decode (or take the raw bytes), read the fields behind
//! `black_box`, count the message. What differs is what carries the message to that code:
//! nothing (`plain`, `plain-raw`), or an [`App`] on a [`MemoryBroker`] (`framework-*`).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use ruststream::memory::MemoryBroker;
use ruststream::prelude::*;
use ruststream::runtime::returned::{Returned, ViaOutcome as _};
use ruststream::runtime::{
    App, FromMessage, Handler, Message, Outcome, Raw, ReplyBuffer, Router, RunningApp,
    SubscriberDef, handler_fn,
};
use ruststream::subscriber;
use tokio::sync::Notify;

/// The reference body of SPEC §5.
pub(crate) const BODY: &[u8] = br#"{"id":10000023,"name":"order-10000023","amount":123.25}"#;

/// What the framework scenarios subscribe and publish to (the `#[subscriber]` attributes
/// below spell it out, as they take a literal).
const SUBJECT: &str = "bench.orders";

/// The reference message type of SPEC §5.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Order {
    id: u64,
    name: String,
    amount: f64,
}

/// The scenarios, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// No framework: decode the body and read the fields in a loop.
    Plain,
    /// No framework: read one byte of the body in a loop.
    PlainRaw,
    /// The JSON body through a `#[subscriber]` handler (`Order` argument).
    FrameworkJson,
    /// The same through `handler_fn`.
    FrameworkJsonFn,
    /// The same through a hand-written `Handler`, as the macro generates it.
    FrameworkJsonManual,
    /// Raw bytes through a `#[subscriber]` handler (`Raw<'_>` argument).
    FrameworkRaw,
    /// `framework-json` with `workers = 4`.
    FrameworkWorkers4,
    /// `framework-json` with Prometheus metrics installed (`App::metrics`).
    FrameworkJsonMetrics,
    /// `framework-json` with a `tracing` subscriber at `info` (a formatter writing to a
    /// sink), as the `run` command installs: the delivery span (`debug`) is not created.
    FrameworkJsonTracing,
    /// `framework-json` with the OpenTelemetry layer at `debug` (a tracer provider with no
    /// exporter): every delivery span is created and becomes a sampled OpenTelemetry span.
    FrameworkJsonOtel,
}

impl Scenario {
    /// Every scenario, baselines first (the observability ones with their features).
    pub(crate) const ALL: &[Scenario] = &[
        Scenario::Plain,
        Scenario::PlainRaw,
        Scenario::FrameworkJson,
        Scenario::FrameworkJsonFn,
        Scenario::FrameworkJsonManual,
        Scenario::FrameworkRaw,
        Scenario::FrameworkWorkers4,
        #[cfg(feature = "metrics")]
        Scenario::FrameworkJsonMetrics,
        #[cfg(feature = "logging")]
        Scenario::FrameworkJsonTracing,
        #[cfg(feature = "otel")]
        Scenario::FrameworkJsonOtel,
    ];

    /// The command-line name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Plain => "plain",
            Scenario::PlainRaw => "plain-raw",
            Scenario::FrameworkJson => "framework-json",
            Scenario::FrameworkJsonFn => "framework-json-fn",
            Scenario::FrameworkJsonManual => "framework-json-manual",
            Scenario::FrameworkRaw => "framework-raw",
            Scenario::FrameworkWorkers4 => "framework-workers4",
            Scenario::FrameworkJsonMetrics => "framework-json-metrics",
            Scenario::FrameworkJsonTracing => "framework-json-tracing",
            Scenario::FrameworkJsonOtel => "framework-json-otel",
        }
    }

    /// The scenario called `name`.
    pub(crate) fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// The command-line names, for usage messages.
    pub(crate) fn names() -> String {
        Scenario::ALL
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// Messages handled so far in the current run.
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// How many messages the current run waits for.
static TARGET: AtomicU64 = AtomicU64::new(0);
/// Signalled when the last message of the run has been handled.
static DONE: Notify = Notify::const_new();

/// Counts a handled message; the last one of the run wakes the publisher. The plain loops
/// call it too, so its few instructions cancel out of the difference.
fn handled() {
    if HANDLED.fetch_add(1, Ordering::AcqRel) + 1 == TARGET.load(Ordering::Acquire) {
        DONE.notify_one();
    }
}

/// The user's work on a decoded order: read every field.
fn read_order(order: &Order) {
    black_box(order.id);
    black_box(order.name.as_str());
    black_box(order.amount);
}

/// The user's work on raw bytes: read one byte.
fn read_raw(bytes: &[u8]) {
    black_box(bytes.first().copied());
}

/// The JSON handler, as a user writes it: what `framework-json` and `framework-workers4`
/// run, through the real macro.
#[subscriber("bench.orders")]
async fn on_order(order: Order) {
    read_order(&order);
    handled();
}

/// The same with `workers = 4`.
#[subscriber("bench.orders", workers = 4)]
async fn on_order_workers4(order: Order) {
    read_order(&order);
    handled();
}

/// The raw-bytes handler, as a user writes it: what `framework-raw` runs.
#[subscriber("bench.orders")]
async fn on_raw(raw: Raw<'_>) {
    read_raw(&raw);
    handled();
}

/// The JSON handler as a plain async fn, for `handler_fn` (`framework-json-fn`).
async fn order_fn(order: Order) {
    read_order(&order);
    handled();
}

/// What `#[subscriber]` generates for [`on_order`], written by hand
/// (`framework-json-manual`): each argument extracted with `FromMessage`, the function
/// called, its return value turned into an outcome by the method-resolution trick the
/// macro uses (`Returned`). Kept beside the macro's so a change in the generated code
/// shows up as a difference between the two rows.
struct HandOrder;

impl Handler for HandOrder {
    async fn call<'a>(&'a self, message: Message<'a>, reply: &'a mut ReplyBuffer) -> Outcome {
        let order = match <Order as FromMessage<'a>>::from_message(&message) {
            Ok(value) => value,
            Err(rejection) => return Outcome::rejected(rejection),
        };
        #[allow(clippy::unit_arg)] // generated code wraps whatever the function returns
        Returned(order_fn(order).await).into_handler_outcome(reply)
    }
}

/// Installs the Prometheus metrics observer.
fn with_metrics(app: App) -> App {
    #[cfg(feature = "metrics")]
    return app.metrics();
    #[cfg(not(feature = "metrics"))]
    {
        let _ = app;
        panic!("framework-json-metrics needs the `metrics` feature")
    }
}

/// A subscriber as a service's logging sets one up, writing to a sink.
fn tracing_subscriber() -> tracing::subscriber::DefaultGuard {
    #[cfg(feature = "logging")]
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
        tracing::subscriber::set_default(subscriber)
    }
    #[cfg(not(feature = "logging"))]
    panic!("framework-json-tracing needs the `logging` feature")
}

/// The OpenTelemetry layer on a tracer provider without an exporter.
fn otel_subscriber() -> tracing::subscriber::DefaultGuard {
    #[cfg(feature = "otel")]
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider =
            ruststream::otel::opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with(ruststream::otel::layer(&provider));
        tracing::subscriber::set_default(subscriber)
    }
    #[cfg(not(feature = "otel"))]
    panic!("framework-json-otel needs the `otel` feature")
}

/// One scenario, set up and ready to handle runs of `n` messages.
pub(crate) enum Bench {
    /// A plain loop over the body: decode it (`json`) or read one raw byte.
    Plain {
        /// Decode (`false`: read one raw byte).
        json: bool,
    },
    /// A started app.
    Framework(Box<Framework>),
}

/// A started app with one subscriber, and the broker connection the publisher uses.
pub(crate) struct Framework {
    /// A current-thread runtime: the publisher (the `block_on` future) and the
    /// subscription task take turns on one thread, so counts are deterministic.
    runtime: tokio::runtime::Runtime,
    /// The app's broker (a clone shares the connection).
    broker: MemoryBroker,
    /// The running app.
    app: RunningApp,
    /// The `tracing` subscriber of the observability scenarios, this thread's default
    /// while the scenario runs.
    _tracing: Option<tracing::subscriber::DefaultGuard>,
}

impl Bench {
    /// Sets up `scenario`: for the framework ones, builds and starts the app.
    pub(crate) fn start(scenario: Scenario) -> Bench {
        let router = match scenario {
            Scenario::Plain => return Bench::Plain { json: true },
            Scenario::PlainRaw => return Bench::Plain { json: false },
            Scenario::FrameworkJson => Router::new().subscriber(on_order),
            Scenario::FrameworkJsonFn => {
                Router::new().subscriber(SubscriberDef::new(SUBJECT, handler_fn(order_fn)))
            }
            Scenario::FrameworkJsonManual => {
                Router::new().subscriber(SubscriberDef::new(SUBJECT, HandOrder))
            }
            Scenario::FrameworkRaw => Router::new().subscriber(on_raw),
            Scenario::FrameworkWorkers4 => Router::new().subscriber(on_order_workers4),
            Scenario::FrameworkJsonMetrics
            | Scenario::FrameworkJsonTracing
            | Scenario::FrameworkJsonOtel => Router::new().subscriber(on_order),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let broker = MemoryBroker::new();
        let mut app = App::new("per-message").broker(broker.clone(), router);
        let mut tracing = None;
        match scenario {
            Scenario::FrameworkJsonMetrics => app = with_metrics(app),
            Scenario::FrameworkJsonTracing => tracing = Some(tracing_subscriber()),
            Scenario::FrameworkJsonOtel => tracing = Some(otel_subscriber()),
            _ => {}
        }
        let app = runtime.block_on(app.start()).expect("the app starts");
        Bench::Framework(Box::new(Framework {
            runtime,
            broker,
            app,
            _tracing: tracing,
        }))
    }

    /// Handles `n` messages and returns once the last one has been handled.
    pub(crate) fn run(&mut self, n: u64) {
        HANDLED.store(0, Ordering::Release);
        TARGET.store(n, Ordering::Release);
        match self {
            Bench::Plain { json } => {
                // From a heap copy, as the framework decodes from its envelope's buffer:
                // `from_utf8`'s cost depends on the alignment of the bytes, and the static
                // body's alignment changes with the binary's layout (by 60 instructions).
                let body = BODY.to_vec();
                if *json {
                    for _ in 0..n {
                        let order: Order =
                            serde_json::from_slice(black_box(&body[..])).expect("decode");
                        read_order(&order);
                        handled();
                    }
                } else {
                    for _ in 0..n {
                        read_raw(black_box(&body[..]));
                        handled();
                    }
                }
            }
            Bench::Framework(framework) => framework.runtime.block_on(async {
                // The raw body, as a client in another process would publish it: the
                // plain loop starts from these bytes too, so only the framework's path
                // (publish, queue, dispatch, extract, settle) differs.
                for _ in 0..n {
                    framework
                        .broker
                        .publish(OutgoingMessage::new(SUBJECT, BODY))
                        .await
                        .expect("publish");
                }
                while HANDLED.load(Ordering::Acquire) < n {
                    DONE.notified().await;
                }
            }),
        }
        assert_eq!(
            HANDLED.load(Ordering::Acquire),
            n,
            "every message handled once"
        );
    }

    /// Stops the app (if any) gracefully.
    pub(crate) fn finish(self) {
        if let Bench::Framework(framework) = self {
            let Framework { runtime, app, .. } = *framework;
            runtime.block_on(app.shutdown()).expect("the app stops");
        }
    }
}
