//! Procedural macros of RustStream: [`#[subscriber]`](macro@subscriber) and
//! [`#[ruststream::app]`](macro@app).
//!
//! Use them through `ruststream` (feature `macros`, and `cli` for `app`): the code they
//! generate names `::ruststream` paths. Everything they generate can be written by hand
//! with `ruststream::runtime::SubscriberDef` and `ruststream::cli::main`; the docs of each
//! macro show both.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod app;
mod options;
mod source;
mod subscriber;

/// Turns an `async fn` into a subscriber a `Router` mounts.
///
/// ```
/// use ruststream::memory::MemoryBroker;
/// use ruststream::runtime::{Router, State};
/// use ruststream::subscriber;
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// #[derive(Default)]
/// struct Stats { orders: std::sync::atomic::AtomicU64 }
///
/// /// Counts each created order.
/// #[subscriber("orders.created", workers = 4, max_attempts = 5, dead_letter = "orders.dead")]
/// async fn handle_order(order: Order, stats: State<Stats>) {
///     stats.orders.fetch_add(order.id, std::sync::atomic::Ordering::Relaxed);
/// }
///
/// let router = Router::<MemoryBroker>::new().subscriber(handle_order);
/// # let _ = router;
/// ```
///
/// # The source
///
/// The first argument says what to subscribe to, in one of two forms:
/// - a name as a string literal: `#[subscriber("orders.created")]`;
/// - a broker descriptor built from its type:
///   `#[subscriber(MemorySource::new("orders.>").group("billing"))]`,
///   `#[subscriber(OrdersStream::new("orders").durable("workers"))]`. The type is read from
///   the path before the constructor (`MemorySource`), since descriptor builder methods
///   return `Self`.
///
/// For a source computed some other way, mount the handler by hand:
/// `SubscriberDef::new(source, handle_order)`.
///
/// # Options
///
/// Comma-separated after the source, each at most once unless said otherwise:
///
/// | option | meaning |
/// |---|---|
/// | `name = "..."` | the handler's name in logs, metrics and AsyncAPI (default: the function's name) |
/// | `workers = 4` | up to 4 messages at once (default 1: one at a time, in order) |
/// | `workers = 8, by_key` | 8 lanes by partition key: per-key order holds |
/// | `format = MsgPack` (or `codec = ..`) | the payload format: `Json`, `MsgPack`, `Cbor`, or any expression convertible into `Format` |
/// | `on_decode_error = DeadLetter` | the policy for payloads that do not decode |
/// | `on_error = Retry` | the policy for handler errors |
/// | `on_panic = Drop` | the policy for panics |
/// | `max_attempts = 5` | give up after 5 attempts |
/// | `dead_letter = "orders.dead"` | where poison messages go |
/// | `publish_to = "orders.done"` | also publish the handler's returned value there (repeatable) |
/// | `layer = TimeoutLayer::new(..)` | wrap the handler in a tower layer; the first is closest to the handler (repeatable) |
/// | `description = "..."` | the AsyncAPI description (default: the doc comment) |
/// | `headers = OrderHeaders` | the type of the headers its messages carry, documented in AsyncAPI by its `schemars::JsonSchema` |
///
/// The policies take `Drop`, `Retry`, `DeadLetter`, `Stop`, or any `FailurePolicy`
/// expression, such as
/// `FailurePolicy::Backoff(Backoff::exponential(Duration::from_millis(50), Duration::from_secs(5)))`.
///
/// # Arguments and return value
///
/// Each argument is extracted by its type's `FromMessage` impl: a decoded payload type,
/// `Raw<'_>`, `Text<'_>`, `&Headers`, `Message<'_>`, `State<T>`, `Producer<B>`, or your
/// own extractor. The return value settles the message: `()` acks; a `Settle`
/// settles as it says; `Result<T, E>` is `T`'s outcome on `Ok` and a failure for the
/// `on_error` policy on `Err`; any other `Serialize` value is the reply, published to the
/// request's reply-to and the `publish_to` destinations.
///
/// # AsyncAPI
///
/// With ruststream's `asyncapi` feature, the macro records the JSON Schema of the payload
/// (the first argument whose type implements `schemars::JsonSchema`) and of the reply (the
/// returned type, or the `T` of `Result<T, E>` and `Respond<T>`) on the `SubscriberDef`, for
/// the app's AsyncAPI document. Types without `JsonSchema` work the same, undocumented;
/// without the feature nothing is recorded. By hand: `SubscriberDef::payload_schema`.
///
/// # What it generates
///
/// For `async fn handle_order(..)`, a constant `handle_order` of a hidden unit type that
/// implements `Handler` and `IntoSubscriber`, so `Router::subscriber(handle_order)` mounts
/// it, and has the function itself as a method, so a unit test calls
/// `handle_order.handle(order, state).await` without a broker.
#[proc_macro_attribute]
pub fn subscriber(args: TokenStream, item: TokenStream) -> TokenStream {
    subscriber::expand(args.into(), item.into()).into()
}

/// Makes the binary's `main` of the function that builds the app.
///
/// ```
/// use ruststream::memory::MemoryBroker;
/// use ruststream::runtime::{App, Router};
///
/// #[ruststream::app]
/// fn app() -> App {
///     App::new("orders").version("1.0.0").broker(MemoryBroker::new(), Router::new())
/// }
/// ```
///
/// The function may be `async`. The generated `main` is
/// `fn main() -> ExitCode { ruststream::cli::main(app) }` (feature `cli`), with the
/// commands:
///
/// - `run`: builds the app on a multi-thread tokio runtime, logs to stderr (filtered by
///   `RUST_LOG`, default `info`) and serves until Ctrl-C or SIGTERM; a startup or run
///   error is printed and the exit code is 1;
/// - `asyncapi gen [--format json|yaml] [--output FILE]`: prints (or writes) the app's
///   AsyncAPI document without starting anything;
/// - `asyncapi serve [--addr HOST:PORT]`: serves the document as a page rendered on the
///   server (readable offline), and at `/asyncapi.json` and `/asyncapi.yaml`;
/// - `--help`, and `--version` (the app's title and version).
#[proc_macro_attribute]
pub fn app(args: TokenStream, item: TokenStream) -> TokenStream {
    app::expand(args.into(), item.into()).into()
}
