//! [`Router`]: subscribers grouped under a prefix, nested as needed.

use tower::{Layer, Service};

use super::middleware::BoxedLayer;
use super::route::{MountedRoute, Route};
use super::{BoxHandlerService, Format, HandlerRequest, IntoSubscriber, Outcome, RuntimeBroker};
use crate::BoxError;

/// A group of subscribers on one broker type, with an optional name prefix and format.
///
/// Routers nest: an included router's prefix is appended to its parent's, and a format set
/// on a router applies to its subscribers (and nested routers) that set none.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use ruststream::memory::MemoryBroker;
/// use ruststream::runtime::{handler_fn, Router, SubscriberDef};
///
/// let billing = Router::<MemoryBroker>::with_prefix("billing.")
///     .subscriber(SubscriberDef::new("invoice", handler_fn(|| async {})));
/// let router = Router::with_prefix("eu.").include(billing); // subscribes to `eu.billing.invoice`
/// # let _ = router;
/// # }
/// ```
pub struct Router<B> {
    prefix: String,
    format: Option<Format>,
    layers: Vec<BoxedLayer>,
    routes: Vec<Box<dyn Route<B>>>,
    children: Vec<Router<B>>,
}

impl<B> std::fmt::Debug for Router<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("prefix", &self.prefix)
            .field("format", &self.format)
            .field("subscribers", &self.routes.len())
            .field("children", &self.children)
            .finish()
    }
}

impl<B: RuntimeBroker> Default for Router<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: RuntimeBroker> Router<B> {
    /// A router without prefix.
    pub fn new() -> Self {
        Self::with_prefix("")
    }

    /// A router whose subscribers' names start with `prefix` (concatenated as is:
    /// include the separator, as in `"orders."`).
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            format: None,
            layers: Vec::new(),
            routes: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The payload format of this router's subscribers that set none.
    #[must_use]
    pub fn format(mut self, format: impl Into<Format>) -> Self {
        self.format = Some(format.into());
        self
    }

    /// Mounts a subscriber: a [`SubscriberDef`](super::SubscriberDef) (of a message or a
    /// batch handler) or a `#[subscriber]` item.
    #[must_use]
    pub fn subscriber<S>(mut self, subscriber: S) -> Self
    where
        S: IntoSubscriber<B>,
    {
        self.routes.push(Box::new(subscriber.into_subscriber()));
        self
    }

    /// Wraps every handler of this router (nested routers included) in a tower layer,
    /// outside the subscribers' own layers.
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

    /// Nests `child` under this router.
    #[must_use]
    pub fn include(mut self, child: Router<B>) -> Self {
        self.children.push(child);
        self
    }

    /// Every subscriber with its full prefix and inherited format.
    pub(crate) fn flatten(
        self,
        outer_prefix: &str,
        outer_format: Option<Format>,
        outer_layers: &[BoxedLayer],
    ) -> Vec<MountedRoute<B>> {
        let prefix = format!("{outer_prefix}{}", self.prefix);
        let format = self.format.or(outer_format);
        let layers: Vec<BoxedLayer> = self.layers.iter().chain(outer_layers).cloned().collect();
        let mut flat: Vec<_> = self
            .routes
            .into_iter()
            .map(|route| MountedRoute {
                route,
                prefix: prefix.clone(),
                format,
                layers: layers.clone(),
            })
            .collect();
        for child in self.children {
            flat.extend(child.flatten(&prefix, format, &layers));
        }
        flat
    }
}
