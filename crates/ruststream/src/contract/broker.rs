//! Broker lifecycle and the two ways of opening a subscription.

use std::future::Future;

use crate::contract::Subscriber;

/// A broker connection: pure lifecycle.
///
/// It names no subscriber or publisher type, so one application can hold brokers of
/// different kinds side by side.
pub trait Broker: Send + Sync {
    /// The crate-level error of this broker.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens the connection. Calling it on a connected broker is not an error.
    fn connect(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Closes the connection: subscriptions end, later publishes fail.
    ///
    /// Never blocks indefinitely and never panics; all fallible teardown reports here.
    fn shutdown(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Subscribing by plain name: what `#[subscriber("orders")]` uses.
pub trait Subscribe: Broker {
    /// The stream type returned for a name.
    type Subscriber: Subscriber;

    /// Opens a subscription to `name` with the broker's default options.
    fn subscribe(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Self::Subscriber, Self::Error>> + Send;
}

/// A subscription descriptor carrying broker-specific options (group, durable name,
/// delivery policy...).
///
/// Give the descriptor an associated constructor and builder methods returning `Self`,
/// so users can write it in the attribute:
/// `#[subscriber(OrdersStream::new("orders").durable("workers"))]`.
/// Because `Subscriber` lives here, one broker can offer several subscription kinds.
pub trait SubscriptionSource<B: Broker> {
    /// The stream type this descriptor opens.
    type Subscriber: Subscriber;

    /// The name subscribed to (subject, topic, queue...), for logs and AsyncAPI.
    fn name(&self) -> &str;

    /// Opens the subscription on `broker`.
    fn subscribe(
        self,
        broker: &B,
    ) -> impl Future<Output = Result<Self::Subscriber, B::Error>> + Send;
}

/// A plain name is a source for every broker that implements [`Subscribe`].
impl<B: Subscribe> SubscriptionSource<B> for &str {
    type Subscriber = B::Subscriber;

    fn name(&self) -> &str {
        self
    }

    fn subscribe(
        self,
        broker: &B,
    ) -> impl Future<Output = Result<Self::Subscriber, B::Error>> + Send {
        broker.subscribe(self)
    }
}

/// An owned name is a source for every broker that implements [`Subscribe`].
impl<B: Subscribe> SubscriptionSource<B> for String {
    type Subscriber = B::Subscriber;

    fn name(&self) -> &str {
        self
    }

    async fn subscribe(self, broker: &B) -> Result<Self::Subscriber, B::Error> {
        broker.subscribe(&self).await
    }
}
