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

/// The span of one delivery (a message, or a batch), around the handler call and the
/// settlement. A batch's span continues the trace of its first message.
pub(crate) fn process<M: IncomingMessage>(scope: &Scope, messages: &[M]) -> Span {
    let Some(message) = messages.first() else {
        return Span::none();
    };
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
        messaging.batch.message_count = (messages.len() > 1).then(|| size_len(messages.len())),
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
    size_len(payload.len())
}

/// A count as a signed integer: what OpenTelemetry attributes hold.
fn size_len(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}
