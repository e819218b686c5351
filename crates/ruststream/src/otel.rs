//! OpenTelemetry (feature `otel`): W3C trace context through message headers, the
//! `tracing` layer that turns the runtime's spans into OpenTelemetry spans, and OTLP
//! export.
//!
//! The runtime opens a `debug` span (target [`SPAN_TARGET`](crate::runtime::SPAN_TARGET))
//! per publish (`ruststream.publish`, kind producer) and per delivery
//! (`ruststream.process`, kind consumer) with the messaging attributes
//! (`messaging.system`, `messaging.destination.name`, `messaging.message.id`,
//! `messaging.message.body.size`, and the `handler`). With this feature a
//! [`Producer`](crate::runtime::Producer) writes the publish span's context into the
//! message's `traceparent` (and `tracestate`) headers, replies carry the delivery's, and a
//! delivery whose headers carry one continues that trace: the consumer's span is a child
//! of the producer's, across processes and brokers.
//!
//! None of this costs anything until a subscriber with an OpenTelemetry layer is
//! installed: the spans are disabled and no header is written.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ruststream::otel;
//!
//! // Export to the collector at OTEL_EXPORTER_OTLP_ENDPOINT (or http://localhost:4318).
//! let provider = otel::tracer_provider("orders", otel::otlp_exporter(None)?);
//! otel::init(&provider); // logs to stderr, spans to the collector
//! // ... run the app ...
//! provider.shutdown()?; // flushes what is left
//! # Ok(()) }
//! ```

use std::borrow::Cow;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanExporter};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt as _};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::Headers;

pub use opentelemetry;
pub use opentelemetry_otlp;
pub use opentelemetry_sdk;
pub use tracing_opentelemetry;

/// The W3C header that carries the trace id, the parent span id and the flags.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header that carries vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

/// Writes into message headers.
struct HeaderInjector<'h>(&'h mut Headers);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            TRACEPARENT => Cow::Borrowed(TRACEPARENT),
            TRACESTATE => Cow::Borrowed(TRACESTATE),
            other => Cow::Owned(other.to_owned()),
        };
        self.0.insert(name, value);
    }
}

/// Reads from message headers.
struct HeaderExtractor<'h>(&'h Headers);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get_str(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name).collect()
    }
}

/// Writes `span`'s trace context into `headers` (`traceparent`, and `tracestate` when
/// there is some). Writes nothing for a disabled span or one that no OpenTelemetry layer
/// records.
pub fn inject(span: &Span, headers: &mut Headers) {
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// The trace context that `headers` carry (an empty context when they carry none).
pub fn extract(headers: &Headers) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the remote span whose context `headers` carry, if any.
pub(crate) fn continue_trace(span: &Span, headers: &Headers) {
    if !headers.contains(TRACEPARENT) {
        return;
    }
    if let Err(error) = span.set_parent(extract(headers)) {
        tracing::debug!(%error, "cannot continue the message's trace");
    }
}

/// An OTLP span exporter (HTTP, protobuf) to `endpoint`, or, when `None`, to
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`, or
/// `http://localhost:4318`. Building it connects to nothing: a missing collector only
/// shows when spans are exported (the SDK logs the failure and drops them).
pub fn otlp_exporter(
    endpoint: Option<&str>,
) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    match endpoint {
        Some(endpoint) => builder.with_endpoint(endpoint).build(),
        None => builder.build(),
    }
}

/// A tracer provider naming the service `service` that exports through `exporter` in
/// batches, off the message path. Keep it, and call its `shutdown` before the process
/// ends so the last batch goes out.
pub fn tracer_provider(service: &str, exporter: impl SpanExporter + 'static) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build()
}

/// The `tracing` layer that records spans as OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("ruststream"))
}

/// The filter of the OpenTelemetry layer [`init`] installs: `RUST_LOG` (default `info`)
/// plus the runtime's message spans ([`SPAN_TARGET`](crate::runtime::SPAN_TARGET) at
/// `debug`).
pub fn span_filter() -> tracing_subscriber::EnvFilter {
    let spans = format!("{}=debug", crate::runtime::SPAN_TARGET);
    match spans.parse() {
        Ok(directive) => crate::logging::env_filter().add_directive(directive),
        Err(_) => crate::logging::env_filter(),
    }
}

/// Installs the global subscriber: [`logging`](crate::logging)'s lines on standard error
/// (level from `RUST_LOG`) plus the OpenTelemetry [`layer`] of `provider`, which also
/// records the runtime's per-message spans ([`span_filter`]). Returns `false` (and
/// changes nothing) when a global subscriber is already installed.
pub fn init(provider: &SdkTracerProvider) -> bool {
    use tracing_subscriber::Layer as _;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(crate::logging::env_filter()),
        )
        .with(layer(provider).with_filter(span_filter()))
        .try_init()
        .is_ok()
}

/// For a service's `main`: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, builds an OTLP provider for `service`,
/// installs it with [`init`] and returns it (shut it down at exit); otherwise returns
/// `None` and installs nothing.
pub fn init_from_env(
    service: &str,
) -> Result<Option<SdkTracerProvider>, opentelemetry_otlp::ExporterBuildError> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if !configured {
        return Ok(None);
    }
    let provider = tracer_provider(service, otlp_exporter(None)?);
    init(&provider);
    Ok(Some(provider))
}
