//! The `tracing` spans of the runtime: one per delivery, one per publish, with the
//! OpenTelemetry messaging attributes. With no subscriber interested they are
//! `Span::none()`: no field is evaluated and nothing is allocated.
//!
//! They are `debug` spans of the target [`SPAN_TARGET`], so logging at the usual `info`
//! creates none (a span per message would cost more than the framework's own path), while
//! `otel::init` enables them for the OpenTelemetry layer alone, and
//! `RUST_LOG=info,ruststream::message=debug` shows them as log context.

use tracing::Span;

/// The target of the runtime's message spans.
pub const SPAN_TARGET: &str = "ruststream::message";

use super::message::Scope;
use crate::headers::MESSAGE_ID;
use crate::{IncomingMessage, OutgoingMessage};

/// The span of one delivery, around the handler call and the settlement.
pub(crate) fn process<M: IncomingMessage>(scope: &Scope, message: &M) -> Span {
    let span = tracing::debug_span!(
        target: "ruststream::message",
        "ruststream.process",
        otel.name = %format_args!("process {}", scope.destination),
        otel.kind = "consumer",
        messaging.system = scope.system,
        messaging.operation.type = "process",
        messaging.destination.name = %scope.destination,
        messaging.message.id = message.headers().get_str(MESSAGE_ID),
        messaging.message.body.size = size(message.payload()),
        handler = %scope.handler,
    );
    #[cfg(feature = "otel")]
    if !span.is_disabled() {
        crate::otel::continue_trace(&span, message.headers());
    }
    span
}

/// The span of one publish.
pub(crate) fn publish(system: &str, message: &OutgoingMessage<'_>) -> Span {
    tracing::debug_span!(
        target: "ruststream::message",
        "ruststream.publish",
        otel.name = %format_args!("send {}", message.name()),
        otel.kind = "producer",
        messaging.system = system,
        messaging.operation.type = "send",
        messaging.destination.name = message.name(),
        messaging.message.id = message.headers().get_str(MESSAGE_ID),
        messaging.message.body.size = size(message.payload()),
    )
}

/// A payload size as a signed integer: what OpenTelemetry attributes hold.
fn size(payload: &[u8]) -> i64 {
    i64::try_from(payload.len()).unwrap_or(i64::MAX)
}
