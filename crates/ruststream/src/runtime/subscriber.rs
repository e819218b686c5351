//! [`SubscriberDef`]: a subscription, its handler and its options.

use tower::{Layer, Service};

use super::middleware::BoxedLayer;
use super::policy::Failures;
use std::time::Duration;

use super::{
    Batch, BatchHandler, BoxHandlerService, FailurePolicy, Format, Handler, HandlerRequest, Invoke,
    Outcome, TypeSchema,
};
use crate::BoxError;
use crate::{Broker, SubscriptionSource};

/// Options of one subscriber. Every field has a default; see the builder methods of
/// [`SubscriberDef`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubscriberOptions {
    pub(crate) name: Option<String>,
    pub(crate) workers: usize,
    pub(crate) by_key: bool,
    pub(crate) format: Option<Format>,
    pub(crate) failures: Failures,
    pub(crate) publish_to: Vec<String>,
    pub(crate) description: Option<String>,
    pub(crate) payload_schema: Option<TypeSchema>,
    pub(crate) reply_schema: Option<TypeSchema>,
    pub(crate) headers_schema: Option<TypeSchema>,
}

impl SubscriberOptions {
    /// What a subscriber with these options is, under its resolved destination and format.
    pub(crate) fn describe(&self, destination: &str, format: Format) -> SubscriberInfo {
        SubscriberInfo {
            handler: self.name.clone().unwrap_or_else(|| destination.to_owned()),
            destination: destination.to_owned(),
            format: self.format.unwrap_or(format),
            description: self.description.clone(),
            publish_to: self.publish_to.clone(),
            dead_letter: self.failures.dead_letter.clone(),
            workers: self.workers,
            by_key: self.by_key,
            operation_bindings: None,
            payload_schema: self.payload_schema.clone(),
            reply_schema: self.reply_schema.clone(),
            headers_schema: self.headers_schema.clone(),
        }
    }
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            name: None,
            workers: 1,
            by_key: false,
            format: None,
            failures: Failures::default(),
            publish_to: Vec::new(),
            description: None,
            payload_schema: None,
            reply_schema: None,
            headers_schema: None,
        }
    }
}

/// A subscription with its handler and options: what `#[subscriber]` builds, and what you
/// build by hand without the macro.
///
/// ```
/// use std::time::Duration;
/// use ruststream::runtime::{handler_fn, Backoff, FailurePolicy, SubscriberDef};
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// let orders = SubscriberDef::new("orders.created", handler_fn(|order: Order| async move {
///     println!("order {}", order.id);
/// }))
/// .name("handle_order")
/// .workers(4)
/// .on_error(FailurePolicy::Backoff(Backoff::exponential(Duration::from_millis(50), Duration::from_secs(5))))
/// .max_attempts(5)
/// .dead_letter("orders.dead");
/// # let _ = orders;
/// ```
#[derive(Debug, Clone)]
pub struct SubscriberDef<S, H> {
    pub(crate) source: S,
    pub(crate) handler: H,
    pub(crate) options: SubscriberOptions,
    pub(crate) layers: Vec<BoxedLayer>,
}

impl<S, H: Handler> SubscriberDef<S, H> {
    /// A subscriber of `source` (a name or a broker descriptor) handled by `handler`.
    pub fn new(source: S, handler: H) -> Self {
        Self {
            source,
            handler,
            options: SubscriberOptions::default(),
            layers: Vec::new(),
        }
    }
}

impl<S, H: BatchHandler> SubscriberDef<S, Batch<H>> {
    /// A subscriber of `source` whose `handler` takes batches: up to 100 messages, each
    /// batch waiting at most 100 ms to fill (see [`max_messages`](Self::max_messages) and
    /// [`max_wait`](Self::max_wait)). Its broker's subscriber must implement
    /// [`BatchSubscriber`](crate::BatchSubscriber). Layers, spans, observers and failure
    /// policies apply as for a message handler, and each message is settled on its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ruststream::runtime::{batch_handler_fn, SubscriberDef};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Reading { value: f64 }
    ///
    /// let readings = SubscriberDef::batch("readings", batch_handler_fn(|readings: Vec<Reading>| async move {
    ///     println!("{} readings", readings.len());
    /// }))
    /// .max_messages(500)
    /// .max_wait(Duration::from_millis(50));
    /// # let _ = readings;
    /// ```
    pub fn batch(source: S, handler: H) -> Self {
        Self {
            source,
            handler: Batch::new(handler),
            options: SubscriberOptions::default(),
            layers: Vec::new(),
        }
    }

    /// The largest batch (at least 1).
    #[must_use]
    pub fn max_messages(mut self, max: usize) -> Self {
        self.handler.max_messages = max.max(1);
        self
    }

    /// How long a batch waits to fill after its first message.
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.handler.max_wait = wait;
        self
    }
}

impl<S, H> SubscriberDef<S, H> {
    /// Names the handler in logs, metrics and AsyncAPI (default: the destination).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Decodes payloads and encodes replies with `format` (default: the router's, the
    /// app's, else JSON).
    #[must_use]
    pub fn format(mut self, format: impl Into<Format>) -> Self {
        self.options.format = Some(format.into());
        self
    }

    /// What to do with a payload that does not decode (default: dead-letter if a
    /// dead-letter destination is set, else drop).
    #[must_use]
    pub fn on_decode_error(mut self, policy: FailurePolicy) -> Self {
        self.options.failures.on_decode_error = Some(policy);
        self
    }

    /// What to do when the handler returns an error (default: retry with exponential
    /// backoff, 100 ms doubling to 30 s).
    #[must_use]
    pub fn on_error(mut self, policy: FailurePolicy) -> Self {
        self.options.failures.on_error = policy;
        self
    }

    /// What to do when the handler panics (default: as for an error). The panic is caught
    /// and logged; it never takes the process down.
    #[must_use]
    pub fn on_panic(mut self, policy: FailurePolicy) -> Self {
        self.options.failures.on_panic = Some(policy);
        self
    }

    /// Gives up after `n` attempts: the message then goes to the dead-letter destination
    /// if one is set, else it is dropped with an error in the log.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.options.failures.max_attempts = Some(n.max(1));
        self
    }

    /// Where poison messages go: published there with their headers and the reason, then
    /// acked.
    #[must_use]
    pub fn dead_letter(mut self, destination: impl Into<String>) -> Self {
        self.options.failures.dead_letter = Some(destination.into());
        self
    }

    /// Handles up to `n` messages at once (default 1: one at a time, in order).
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.options.workers = n.max(1);
        self.options.by_key = false;
        self
    }

    /// Handles up to `n` messages at once on `n` lanes chosen by
    /// [`partition_key`](crate::IncomingMessage::partition_key): messages with the same key
    /// are handled one after another, in order; keyless messages rotate over the lanes.
    #[must_use]
    pub fn workers_by_key(mut self, n: usize) -> Self {
        self.options.workers = n.max(1);
        self.options.by_key = true;
        self
    }

    /// Publishes the handler's reply value to `destination` too (in addition to the
    /// request's reply-to). Call it again for more destinations.
    #[must_use]
    pub fn publish_to(mut self, destination: impl Into<String>) -> Self {
        self.options.publish_to.push(destination.into());
        self
    }

    /// Wraps the handler in a tower layer (`tower::timeout::TimeoutLayer`,
    /// `ConcurrencyLimitLayer`, `RateLimitLayer`, `LoadShedLayer`...). Layers added first
    /// sit closest to the handler. A middleware error is a handler failure: the error
    /// policy applies.
    #[must_use]
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxHandlerService> + Send + Sync + 'static,
        L::Service: for<'a> Service<HandlerRequest<'a>, Response = Outcome> + Send + 'static,
        for<'a> <L::Service as Service<HandlerRequest<'a>>>::Error: Into<BoxError>,
        for<'a> <L::Service as Service<HandlerRequest<'a>>>::Future: Send,
    {
        self.layers.push(BoxedLayer::new(layer));
        self
    }

    /// A description for the AsyncAPI document.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.options.description = Some(description.into());
        self
    }

    /// The JSON Schema of the payload, for the AsyncAPI document (`#[subscriber]` sets it
    /// from the argument whose type implements `JsonSchema`): `TypeSchema::of::<Order>()`
    /// with the `asyncapi` feature.
    #[must_use]
    pub fn payload_schema(mut self, schema: impl Into<Option<TypeSchema>>) -> Self {
        self.options.payload_schema = schema.into();
        self
    }

    /// The JSON Schema of the reply, for the AsyncAPI document (`#[subscriber]` sets it
    /// from a returned type that implements `JsonSchema`). A subscriber with a reply schema
    /// is documented as request-reply.
    #[must_use]
    pub fn reply_schema(mut self, schema: impl Into<Option<TypeSchema>>) -> Self {
        self.options.reply_schema = schema.into();
        self
    }

    /// The JSON Schema of the headers its messages carry (an object with a property per
    /// header), for the AsyncAPI document (`headers = MyHeaders` in `#[subscriber]`).
    #[must_use]
    pub fn headers_schema(mut self, schema: impl Into<Option<TypeSchema>>) -> Self {
        self.options.headers_schema = schema.into();
        self
    }
}

/// Anything a router can mount as a subscriber on a broker of type `B`: a
/// [`SubscriberDef`], or the item `#[subscriber]` generates.
pub trait IntoSubscriber<B: Broker> {
    /// The source: a name, or the broker's descriptor. A router's prefix is applied
    /// with [`SubscriptionSource::with_prefix`] when the app starts.
    type Source: SubscriptionSource<B> + Clone + Send + Sync + 'static;
    /// The handler: a message [`Handler`], or a batch handler in [`Batch`].
    type Handler: Invoke<<Self::Source as SubscriptionSource<B>>::Subscriber>;

    /// The definition.
    fn into_subscriber(self) -> SubscriberDef<Self::Source, Self::Handler>;
}

impl<B, S, H> IntoSubscriber<B> for SubscriberDef<S, H>
where
    B: Broker,
    S: SubscriptionSource<B> + Clone + Send + Sync + 'static,
    H: Invoke<S::Subscriber>,
{
    type Source = S;
    type Handler = H;

    fn into_subscriber(self) -> SubscriberDef<S, H> {
        self
    }
}

/// What a mounted subscriber is, as [`App::describe`](super::App::describe) reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SubscriberInfo {
    /// The handler's name.
    pub handler: String,
    /// What it subscribes to, prefix included.
    pub destination: String,
    /// Its payload format.
    pub format: Format,
    /// Its description.
    pub description: Option<String>,
    /// Where its replies are published besides the reply-to.
    pub publish_to: Vec<String>,
    /// Its dead-letter destination.
    pub dead_letter: Option<String>,
    /// How many messages it handles at once.
    pub workers: usize,
    /// Whether its workers are lanes by partition key.
    pub by_key: bool,
    /// The AsyncAPI operation bindings its source supplies.
    pub operation_bindings: Option<serde_json::Value>,
    /// The JSON Schema of its payload, if known.
    pub payload_schema: Option<TypeSchema>,
    /// The JSON Schema of its reply, if it replies and the schema is known.
    pub reply_schema: Option<TypeSchema>,
    /// The JSON Schema of the headers it declares.
    pub headers_schema: Option<TypeSchema>,
}
