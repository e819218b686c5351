//! # RustStream
//!
//! An async messaging framework: a broker-agnostic contract, codecs, an embedded
//! in-process broker, test support and a conformance harness for broker authors.
//!
//! The module tree is the map:
//!
//! | module | what it holds | feature |
//! |---|---|---|
//! | [`contract`] | the traits a broker implements and the types they exchange (re-exported here) | always |
//! | [`headers`] | [`Headers`] and the header names the framework writes | always |
//! | [`codec`] | [`Codec`](codec::Codec), JSON, MessagePack, CBOR | `json` (default), `msgpack`, `cbor` |
//! | [`matching`] | each broker's name-matching rule | always |
//! | `runtime` | apps, routers, handlers, settlement, retries, workers, shutdown | `runtime` (default) |
//! | [`kit`] | what broker crates share: secrets and redaction, TLS settings, the shutdown signal, batch gathering, header checks, backoff, live-server test support | always (`live` with `live-tests`) |
//! | `memory` | the embedded in-process broker | `memory` |
//! | `testing` | `TestApp` (run the service's own app in a test) and every broker's `TestClient` | `testing` |
//! | `conformance` | the suites that hold a broker crate to the contract | `conformance` |
//! | `subscriber`, `app` | `#[subscriber]` on an async fn, `#[ruststream::app]` on the app builder | `macros` |
//! | `asyncapi` | the app's AsyncAPI 3.0 document, JSON or YAML, and its HTML page | `asyncapi` |
//! | `cli` | a service's command line: `run`, `asyncapi gen`, `asyncapi serve` | `cli` |
//! | `metrics` | Prometheus metrics of every message, an `Observer` | `metrics` |
//! | `logging` | the default `tracing` subscriber: logs to standard error, level from `RUST_LOG` | `logging` (in `cli`) |
//! | `otel` | OpenTelemetry: trace context through message headers, OTLP export | `otel` |
//! | `http` | the HTTP endpoint: `/metrics`, `/health/live`, `/health/ready`, `/asyncapi` | `http` |
//!
//! A broker crate depends on `ruststream` with `default-features = false` and gets the
//! whole contract (and the broker kit) without the runtime's dependencies.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod codec;
pub mod contract;
pub mod kit;
pub mod matching;
pub mod prelude;
#[cfg(feature = "runtime")]
pub mod runtime;

#[cfg(feature = "memory")]
pub mod memory;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "conformance")]
pub mod conformance;

#[cfg(feature = "asyncapi")]
pub mod asyncapi;

#[cfg(feature = "cli")]
pub mod cli;

#[cfg(feature = "metrics")]
pub mod metrics;

#[cfg(feature = "logging")]
pub mod logging;

#[cfg(feature = "otel")]
pub mod otel;

#[cfg(feature = "http")]
pub mod http;

#[cfg(feature = "macros")]
pub use ruststream_macros::{app, subscriber};

/// What the macros' generated code calls; not a public API.
#[doc(hidden)]
pub mod __private {
    /// `main` of `#[ruststream::app]`.
    #[cfg(feature = "cli")]
    #[doc(hidden)]
    #[macro_export]
    macro_rules! __ruststream_app_main {
        ($build:expr) => {
            $crate::cli::main($build)
        };
    }

    /// `main` of `#[ruststream::app]` without the `cli` feature: say which feature to add.
    #[cfg(not(feature = "cli"))]
    #[doc(hidden)]
    #[macro_export]
    macro_rules! __ruststream_app_main {
        ($build:expr) => {
            ::core::compile_error!(
                "#[ruststream::app] needs the `cli` feature of ruststream: \
                 ruststream = { version = \"..\", features = [\"macros\", \"cli\"] }"
            )
        };
    }

    pub use crate::__ruststream_app_main as app_main;
}

pub use contract::headers;
pub use contract::{
    AckError, BatchSubscriber, BoxError, Broker, Capabilities, DescribeServer, HeaderSupport,
    Headers, IncomingMessage, OutgoingMessage, Partitioned, Publisher, Reply, RequestReply,
    ServerSpec, Subscribe, Subscriber, SubscriberExt, SubscriptionSource, Transaction,
    TransactionalPublisher,
};

/// The Markdown docs of the repository, compiled and run as doctests so every code block in
/// them stays true to the code.
#[cfg(doctest)]
mod markdown_docs {
    #[cfg(feature = "memory")]
    #[doc = include_str!("../../../docs/memory-broker.md")]
    struct MemoryBroker;

    #[cfg(feature = "memory")]
    #[doc = include_str!("../../../docs/runtime.md")]
    struct Runtime;

    #[cfg(all(feature = "memory", feature = "macros"))]
    #[doc = include_str!("../../../README.md")]
    struct Readme;

    #[cfg(all(feature = "memory", feature = "macros", feature = "asyncapi"))]
    #[doc = include_str!("../../../docs/asyncapi.md")]
    struct AsyncApi;

    #[cfg(all(
        feature = "memory",
        feature = "metrics",
        feature = "otel",
        feature = "http"
    ))]
    #[doc = include_str!("../../../docs/observability.md")]
    struct Observability;

    #[cfg(all(feature = "memory", feature = "macros", feature = "testing"))]
    #[doc = include_str!("../../../docs/testing.md")]
    struct Testing;

    #[cfg(all(feature = "memory", feature = "macros", feature = "testing"))]
    #[doc = include_str!("../../../docs/from-faststream.md")]
    struct FromFaststream;
}
