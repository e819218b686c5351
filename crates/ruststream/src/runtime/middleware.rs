//! Tower middleware around handlers: `timeout`, `concurrency limit`, `rate limit`, `load
//! shed` and any other `tower::Layer` plug in as they are.
//!
//! A handler seen as a tower service takes a [`HandlerRequest`] and answers an
//! [`Outcome`]; a middleware error (a timeout, an overload) becomes a handler failure, so
//! the subscriber's error policy decides what happens to the message (to every message
//! of a batch). Message and batch handlers go through the same layers. Layers can be set on
//! a subscriber, a router or the app: the subscriber's sit closest to the handler, the
//! app's outermost. Without any layer the runtime calls the handler directly, at no cost.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use futures::Stream;

use super::invoke::sealed::{Call, Invoke};
use super::{Message, Outcome, ReplyBuffer};
use crate::{BoxError, Subscriber};

/// What a handler middleware receives: the delivered messages, and where a reply is
/// encoded.
#[derive(Debug)]
#[non_exhaustive]
pub struct HandlerRequest<'a> {
    /// The delivered messages: one for a message handler, the batch for a batch handler.
    /// Never empty.
    pub messages: &'a [Message<'a>],
    /// Where the handler encodes its reply.
    pub reply: &'a mut ReplyBuffer,
}

/// A handler, or a handler wrapped in layers, as one boxed tower service.
pub struct BoxHandlerService(Box<dyn ErasedService>);

impl std::fmt::Debug for BoxHandlerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxHandlerService")
    }
}

/// An object-safe view of a service over handler requests of every lifetime.
trait ErasedService: Send {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>;
    fn call<'a>(&mut self, request: HandlerRequest<'a>)
    -> BoxFuture<'a, Result<Outcome, BoxError>>;
}

impl<S> ErasedService for S
where
    S: for<'a> Service<HandlerRequest<'a>, Response = Outcome> + Send + 'static,
    for<'a> <S as Service<HandlerRequest<'a>>>::Error: Into<BoxError>,
    for<'a> <S as Service<HandlerRequest<'a>>>::Future: Send,
{
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::poll_ready(self, cx).map_err(Into::into)
    }

    fn call<'a>(
        &mut self,
        request: HandlerRequest<'a>,
    ) -> BoxFuture<'a, Result<Outcome, BoxError>> {
        let future = Service::call(self, request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

impl<'a> Service<HandlerRequest<'a>> for BoxHandlerService {
    type Response = Outcome;
    type Error = BoxError;
    type Future = BoxFuture<'a, Result<Outcome, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: HandlerRequest<'a>) -> Self::Future {
        self.0.call(request)
    }
}

/// The innermost service: calls the handler.
struct HandlerAsService<H>(Arc<H>);

impl<'a, H: Call> Service<HandlerRequest<'a>> for HandlerAsService<H> {
    type Response = Outcome;
    type Error = BoxError;
    type Future = BoxFuture<'a, Result<Outcome, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HandlerRequest<'a>) -> Self::Future {
        let handler = Arc::clone(&self.0);
        Box::pin(async move { Ok(handler.call(request.messages, request.reply).await) })
    }
}

/// A layer, boxed so routers and apps can hold layers of any type.
#[derive(Clone)]
pub(crate) struct BoxedLayer(Arc<dyn Fn(BoxHandlerService) -> BoxHandlerService + Send + Sync>);

impl std::fmt::Debug for BoxedLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxedLayer")
    }
}

impl BoxedLayer {
    pub(crate) fn new<L>(layer: L) -> Self
    where
        L: Layer<BoxHandlerService> + Send + Sync + 'static,
        L::Service: for<'a> Service<HandlerRequest<'a>, Response = Outcome> + Send + 'static,
        for<'a> <L::Service as Service<HandlerRequest<'a>>>::Error: Into<BoxError>,
        for<'a> <L::Service as Service<HandlerRequest<'a>>>::Future: Send,
    {
        Self(Arc::new(move |inner| {
            BoxHandlerService(Box::new(layer.layer(inner)))
        }))
    }
}

/// A handler (message or batch) wrapped in layers, innermost first.
pub(crate) struct Layered<H> {
    handler: Arc<H>,
    service: tokio::sync::Mutex<BoxHandlerService>,
}

impl<H: Call> Layered<H> {
    pub(crate) fn new(handler: H, layers: &[BoxedLayer]) -> Self {
        let handler = Arc::new(handler);
        let innermost = BoxHandlerService(Box::new(HandlerAsService(Arc::clone(&handler))));
        let service = layers
            .iter()
            .fold(innermost, |service, layer| (layer.0)(service));
        Self {
            handler,
            service: tokio::sync::Mutex::new(service),
        }
    }
}

impl<H: Call> Call for Layered<H> {
    async fn call<'a>(
        &'a self,
        messages: &'a [Message<'a>],
        reply: &'a mut ReplyBuffer,
    ) -> Outcome {
        // One service instance serves every worker: readiness (a permit, a rate slot) is
        // taken under the lock, then the call runs without it.
        let future = {
            let mut service = self.service.lock().await;
            if let Err(error) = poll_fn(|cx| service.0.poll_ready(cx)).await {
                return Outcome::failed(error);
            }
            service.0.call(HandlerRequest { messages, reply })
        };
        future.await.unwrap_or_else(Outcome::failed)
    }
}

impl<Sub: Subscriber, H: Invoke<Sub>> Invoke<Sub> for Layered<H> {
    type Delivery = H::Delivery;

    fn deliveries<'s>(
        &'s self,
        subscriber: &'s mut Sub,
    ) -> impl Stream<Item = Result<H::Delivery, Sub::Error>> + Send + 's {
        self.handler.deliveries(subscriber)
    }

    fn messages(delivery: &H::Delivery) -> &[Sub::Message] {
        H::messages(delivery)
    }

    fn into_messages(delivery: H::Delivery) -> impl Iterator<Item = Sub::Message> + Send {
        H::into_messages(delivery)
    }
}

/// What a publish middleware receives: the message about to be published.
///
/// To change it (add a header, say), build a new [`OutgoingMessage`](crate::OutgoingMessage)
/// borrowing your own data and pass that to the inner service.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PublishRequest<'a> {
    /// The message.
    pub message: crate::OutgoingMessage<'a>,
}

impl<'a> PublishRequest<'a> {
    /// A request to publish `message`.
    pub fn new(message: crate::OutgoingMessage<'a>) -> Self {
        Self { message }
    }
}

/// The publish path, with its layers, as one boxed tower service. Cloning it clones the
/// layers' services (as tower middleware expects), so publish middleware must be `Clone`;
/// wrap a non-`Clone` one (such as a rate limit) in `tower::buffer`.
pub struct BoxPublishService(Box<dyn ErasedPublish>);

impl Clone for BoxPublishService {
    fn clone(&self) -> Self {
        Self(self.0.clone_box())
    }
}

impl std::fmt::Debug for BoxPublishService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxPublishService")
    }
}

trait ErasedPublish: Send + Sync {
    fn clone_box(&self) -> Box<dyn ErasedPublish>;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>;
    fn call<'a>(&mut self, request: PublishRequest<'a>) -> BoxFuture<'a, Result<(), BoxError>>;
}

impl<S> ErasedPublish for S
where
    S: for<'a> Service<PublishRequest<'a>, Response = ()> + Clone + Send + Sync + 'static,
    for<'a> <S as Service<PublishRequest<'a>>>::Error: Into<BoxError>,
    for<'a> <S as Service<PublishRequest<'a>>>::Future: Send,
{
    fn clone_box(&self) -> Box<dyn ErasedPublish> {
        Box::new(self.clone())
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::poll_ready(self, cx).map_err(Into::into)
    }

    fn call<'a>(&mut self, request: PublishRequest<'a>) -> BoxFuture<'a, Result<(), BoxError>> {
        let future = Service::call(self, request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

impl<'a> Service<PublishRequest<'a>> for BoxPublishService {
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture<'a, Result<(), BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: PublishRequest<'a>) -> Self::Future {
        self.0.call(request)
    }
}

/// The innermost publish service: the broker itself.
#[derive(Clone)]
struct BrokerPublish<B>(B);

impl<'a, B: crate::Publisher + Clone + Sync + 'static> Service<PublishRequest<'a>>
    for BrokerPublish<B>
{
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture<'a, Result<(), BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: PublishRequest<'a>) -> Self::Future {
        let broker = self.0.clone();
        Box::pin(async move { broker.publish(request.message).await.map_err(Into::into) })
    }
}

/// A publish layer, boxed so apps can hold layers of any type.
#[derive(Clone)]
pub(crate) struct BoxedPublishLayer(
    Arc<dyn Fn(BoxPublishService) -> BoxPublishService + Send + Sync>,
);

impl std::fmt::Debug for BoxedPublishLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxedPublishLayer")
    }
}

impl BoxedPublishLayer {
    pub(crate) fn new<L>(layer: L) -> Self
    where
        L: Layer<BoxPublishService> + Send + Sync + 'static,
        L::Service:
            for<'a> Service<PublishRequest<'a>, Response = ()> + Clone + Send + Sync + 'static,
        for<'a> <L::Service as Service<PublishRequest<'a>>>::Error: Into<BoxError>,
        for<'a> <L::Service as Service<PublishRequest<'a>>>::Future: Send,
    {
        Self(Arc::new(move |inner| {
            BoxPublishService(Box::new(layer.layer(inner)))
        }))
    }
}

/// A broker's publish path wrapped in layers: what producers and the runtime publish
/// through when an app has publish layers.
pub(crate) struct LayeredPublisher {
    service: BoxPublishService,
}

impl std::fmt::Debug for LayeredPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayeredPublisher")
    }
}

impl LayeredPublisher {
    pub(crate) fn new<B: crate::Publisher + Clone + Sync + 'static>(
        broker: B,
        layers: &[BoxedPublishLayer],
    ) -> Self {
        let innermost = BoxPublishService(Box::new(BrokerPublish(broker)));
        let service = layers
            .iter()
            .fold(innermost, |service, layer| (layer.0)(service));
        Self { service }
    }

    pub(crate) async fn publish(
        &self,
        message: crate::OutgoingMessage<'_>,
    ) -> Result<(), BoxError> {
        // A clone per publish, as tower expects: a layer's state is shared by its clones.
        let mut service = self.service.clone();
        poll_fn(|cx| service.0.poll_ready(cx)).await?;
        service.0.call(PublishRequest { message }).await
    }
}
