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

    /// The server this broker talks to, for the AsyncAPI `servers` section, if it has the
    /// [`DescribeServer`](crate::DescribeServer) capability (then override it as
    /// `Some(self.describe_server())`). Defaults to `None`: the app's document lists no
    /// server for this broker.
    fn server(&self) -> Option<crate::ServerSpec> {
        None
    }
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

    /// The descriptor with a router's prefix prepended to its name (`"orders."` +
    /// `"created"`), or itself back (`Err`) if this kind of subscription cannot take one.
    ///
    /// Defaults to `Err`: an app that mounts such a descriptor under a prefix fails to
    /// start, naming the handler and this capability. Never called with an empty prefix.
    fn with_prefix(self, prefix: &str) -> Result<Self, Self>
    where
        Self: Sized,
    {
        let _ = prefix;
        Err(self)
    }

    /// The descriptor for a subscription that holds up to `in_flight` messages in its
    /// handlers at once (`workers(n)`; times the batch size for batch handlers), called
    /// once when the app starts. A broker whose consumers take a credit window (AMQP
    /// prefetch, JetStream `max_ack_pending`) sizes it to at least `in_flight` unless the
    /// descriptor sets one, so the workers are never starved. Defaults to itself.
    fn with_in_flight(self, in_flight: usize) -> Self
    where
        Self: Sized,
    {
        let _ = in_flight;
        self
    }

    /// The AsyncAPI operation bindings of this subscription (a protocol name mapped to its
    /// binding object, such as `{"nats": {"queue": "workers"}}`). Defaults to none.
    #[cfg(feature = "bindings")]
    fn operation_bindings(&self) -> Option<serde_json::Value> {
        None
    }
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

    /// The prefixed name is interned: kept for the life of the process, once per distinct
    /// name, as a router's names are fixed when its app is built.
    fn with_prefix(self, prefix: &str) -> Result<Self, Self> {
        Ok(intern(&format!("{prefix}{self}")))
    }
}

/// The one `&'static str` of `name`, leaked the first time it is asked for.
fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
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

    fn with_prefix(mut self, prefix: &str) -> Result<Self, Self> {
        self.insert_str(0, prefix);
        Ok(self)
    }
}
