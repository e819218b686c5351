//! [`Producer`]: publishing typed values, inside handlers and outside.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use super::middleware::LayeredPublisher;
use super::observe::{Observers, PublishAttempt};
use super::{Format, FromMessage, Message, Rejection, RuntimeBroker};
use crate::BoxError;
use crate::codec::CodecError;
use crate::headers::{CONTENT_TYPE, CORRELATION_ID, MESSAGE_ID};
use crate::{Headers, OutgoingMessage, Publisher, RequestReply};

/// Why a publish through a [`Producer`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError<E: std::error::Error + 'static> {
    /// The value could not be encoded.
    #[error(transparent)]
    Encode(CodecError),
    /// The broker refused or failed the publish.
    #[error("the broker failed the publish: {0}")]
    Broker(#[source] E),
    /// A publish middleware failed the publish.
    #[error("a publish middleware failed the publish: {0}")]
    Middleware(#[source] BoxError),
    /// The reply to a request did not decode into the expected type.
    #[error("the reply did not decode: {0}")]
    DecodeReply(CodecError),
}

/// Publishes typed values to a broker, encoded with the app's format and labelled with
/// its content type.
///
/// The app registers one per broker, so a handler takes it as an argument
/// (`producer: Producer<MemoryBroker>`); outside handlers, build one with
/// [`Producer::new`].
#[derive(Debug, Clone)]
pub struct Producer<B> {
    broker: B,
    format: Format,
    observers: Option<Arc<Observers>>,
    publisher: Option<Arc<LayeredPublisher>>,
    /// The messaging system, for observers and spans.
    system: &'static str,
}

impl<B: RuntimeBroker> Producer<B> {
    /// A producer on `broker`, encoding JSON.
    pub fn new(broker: B) -> Self {
        Self {
            broker,
            format: Format::Json,
            observers: None,
            publisher: None,
            system: super::system_of::<B>(),
        }
    }

    /// Publishes through the app's publish layers.
    pub(crate) fn with_publisher(mut self, publisher: Option<Arc<LayeredPublisher>>) -> Self {
        self.publisher = publisher;
        self
    }

    /// Reports every publish to the app's observers.
    pub(crate) fn with_observers(mut self, observers: Arc<Observers>) -> Self {
        self.observers = (!observers.is_empty()).then_some(observers);
        self
    }

    /// Encodes with `format` instead.
    #[must_use]
    pub fn with_format(mut self, format: impl Into<Format>) -> Self {
        self.format = format.into();
        self
    }

    /// The broker it publishes to.
    pub fn broker(&self) -> &B {
        &self.broker
    }

    /// Publishes `value` to `name`.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), ProducerError<<B as Publisher>::Error>> {
        self.message(name, value).send().await
    }

    /// A publish with options: headers, key, correlation id, reply-to, or a request.
    pub fn message<'a, T: Serialize + ?Sized>(
        &'a self,
        name: &'a str,
        value: &'a T,
    ) -> MessageBuilder<'a, B, T> {
        MessageBuilder {
            producer: self,
            name,
            value,
            headers: Headers::new(),
            key: None,
            reply_to: None,
        }
    }
}

impl<'a, B: RuntimeBroker> FromMessage<'a> for Producer<B> {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        // The handler's own broker first: two brokers of one type each get their own.
        if let Some(own) = message.own_producer::<Producer<B>>() {
            return Ok(own.clone());
        }
        message
            .state::<Producer<B>>()
            .map(|producer| (*producer).clone())
            .ok_or(Rejection::MissingState(std::any::type_name::<Producer<B>>()))
    }
}

/// One publish being prepared; finish it with [`send`](Self::send) or
/// [`request`](Self::request).
#[derive(Debug)]
#[must_use = "a publish does nothing until `send` or `request` is awaited"]
pub struct MessageBuilder<'a, B, T: ?Sized> {
    producer: &'a Producer<B>,
    name: &'a str,
    value: &'a T,
    headers: Headers,
    key: Option<&'a [u8]>,
    reply_to: Option<&'a str>,
}

impl<'a, B: RuntimeBroker, T: Serialize + ?Sized> MessageBuilder<'a, B, T> {
    /// Adds a header (the content type is set for you).
    pub fn header(
        mut self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        value: impl Into<bytes::Bytes>,
    ) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the `correlation-id` header.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.headers.insert(CORRELATION_ID, id.into());
        self
    }

    /// Sets the `message-id` header (brokers that de-duplicate use it).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.headers.insert(MESSAGE_ID, id.into());
        self
    }

    /// Sets the partition key (brokers with the `Partitioned` capability keep per-key order).
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Asks for replies at `reply_to`.
    pub fn reply_to(mut self, reply_to: &'a str) -> Self {
        self.reply_to = Some(reply_to);
        self
    }

    fn encode(&mut self) -> Result<Vec<u8>, ProducerError<<B as Publisher>::Error>> {
        let format = self.producer.format;
        let mut body = Vec::new();
        format
            .encode(self.value, &mut body)
            .map_err(ProducerError::Encode)?;
        if !self.headers.contains(CONTENT_TYPE) {
            self.headers.insert(CONTENT_TYPE, format.content_type());
        }
        Ok(body)
    }

    fn outgoing<'m>(&'m self, body: &'m [u8]) -> OutgoingMessage<'m> {
        let mut message = OutgoingMessage::new(self.name, body).with_headers(&self.headers);
        if let Some(key) = self.key {
            message = message.with_key(key);
        }
        if let Some(reply_to) = self.reply_to {
            message = message.with_reply_to(reply_to);
        }
        message
    }

    /// Publishes.
    pub async fn send(mut self) -> Result<(), ProducerError<<B as Publisher>::Error>> {
        let body = self.encode()?;
        let span = super::spans::publish(self.producer.system, &self.outgoing(&body));
        // The consumer's span continues this one's trace.
        #[cfg(feature = "otel")]
        crate::otel::inject(&span, &mut self.headers);
        let started = Instant::now();
        let result = match &self.producer.publisher {
            Some(layered) => layered
                .publish(self.outgoing(&body))
                .instrument(span)
                .await
                .map_err(ProducerError::Middleware),
            None => self
                .producer
                .broker
                .publish(self.outgoing(&body))
                .instrument(span)
                .await
                .map_err(ProducerError::Broker),
        };
        if let Some(observers) = &self.producer.observers {
            let error = result
                .as_ref()
                .err()
                .map(|e| e as &(dyn std::error::Error + 'static));
            observers.published(&PublishAttempt {
                message: &self.outgoing(&body),
                system: self.producer.system,
                error,
                elapsed: started.elapsed(),
            });
        }
        result
    }

    /// Publishes as a request and decodes the reply as `R`, waiting up to `timeout`.
    pub async fn request<R: DeserializeOwned>(
        mut self,
        timeout: Duration,
    ) -> Result<R, ProducerError<<B as Publisher>::Error>>
    where
        B: RequestReply,
    {
        let body = self.encode()?;
        let reply = self
            .producer
            .broker
            .request(self.outgoing(&body), timeout)
            .await
            .map_err(ProducerError::Broker)?;
        self.producer
            .format
            .decode(&reply.payload)
            .map_err(ProducerError::DecodeReply)
    }
}
