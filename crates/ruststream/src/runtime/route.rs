//! A mounted subscriber's life: subscribing once at start (so a misconfigured one stops
//! the start with its name), then one task that consumes through the subscription's
//! [`Pipeline`] and subscribes again, with backoff, whenever the subscription ends or
//! fails.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::consume::{End, consume};
use super::health::Flag;
use super::invoke::sealed::Invoke;
use super::message::{Scope, StateMap};
use super::middleware::{BoxedLayer, Layered, LayeredPublisher};
use super::observe::Observers;
use super::pipeline::Pipeline;
use super::policy::Backoff;
use super::settle::Settler;
use super::stop::StopSignal;
use super::subscriber::SubscriberOptions;
use super::{AppError, Format, Health, RuntimeBroker, SubscriberDef, SubscriberInfo};
use crate::{Broker, Subscriber, SubscriptionSource};

/// How long to wait before subscribing again after a failure, by consecutive failures.
const RESUBSCRIBE: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(10),
    multiplier: 2.0,
    jitter: 0.2,
};

/// What every route of an app shares when it starts.
#[derive(Debug, Clone)]
pub(crate) struct RouteContext {
    pub(crate) prefix: String,
    pub(crate) format: Format,
    pub(crate) state: Arc<StateMap>,
    /// Cancelled when intake must stop (shutdown).
    pub(crate) intake: StopSignal,
    /// Cancelled by a `Stop` policy to ask the app to shut down; `intake` is its child.
    pub(crate) stop_app: StopSignal,
    pub(crate) observers: Arc<Observers>,
    /// Router and app layers, innermost first.
    pub(crate) layers: Arc<[BoxedLayer]>,
    /// The broker's publish path with the app's publish layers, if any.
    pub(crate) publisher: Option<Arc<LayeredPublisher>>,
    /// The route's own broker's `Producer<B>`, for its handlers' `Producer<B>` arguments.
    pub(crate) own_producer: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Where each subscription says whether it is consuming.
    pub(crate) health: Health,
}

/// A subscriber with the prefix and format it inherits from its routers.
pub(crate) struct MountedRoute<B> {
    pub(crate) route: Box<dyn Route<B>>,
    pub(crate) prefix: String,
    pub(crate) format: Option<Format>,
    /// The routers' layers, innermost first.
    pub(crate) layers: Vec<BoxedLayer>,
}

impl RouteContext {
    /// The context of one route: its prefix and format resolved against the app's.
    pub(crate) fn for_route<B>(&self, route: &MountedRoute<B>) -> Self {
        let layers: Vec<BoxedLayer> = route
            .layers
            .iter()
            .chain(self.layers.iter())
            .cloned()
            .collect();
        Self {
            prefix: route.prefix.clone(),
            format: route.format.unwrap_or(self.format),
            layers: layers.into(),
            ..self.clone()
        }
    }
}

/// A mounted subscriber, type-erased so one router holds many.
pub(crate) trait Route<B>: Send {
    /// Subscribes, then spawns the subscription's task. Fails if the first subscribe
    /// fails, so a misconfigured subscriber stops the start with its name.
    fn start(
        self: Box<Self>,
        broker: B,
        ctx: RouteContext,
    ) -> BoxFuture<'static, Result<JoinHandle<()>, AppError>>;

    /// What the subscriber is, under the given prefix and inherited format.
    fn describe(&self, prefix: &str, format: Format) -> SubscriberInfo;
}

impl<B, S, H> Route<B> for SubscriberDef<S, H>
where
    B: RuntimeBroker,
    S: SubscriptionSource<B> + Clone + Send + Sync + 'static,
    S::Subscriber: 'static,
    H: Invoke<S::Subscriber>,
{
    fn start(
        self: Box<Self>,
        broker: B,
        ctx: RouteContext,
    ) -> BoxFuture<'static, Result<JoinHandle<()>, AppError>> {
        let SubscriberDef {
            source,
            handler,
            options,
            mut layers,
        } = *self;
        let source = match prefixed(source, &ctx.prefix, &options) {
            Ok(source) => source,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let destination = source.name().to_owned();
        let scope = scope_for::<B>(destination, &options, &ctx);
        layers.extend(ctx.layers.iter().cloned());
        if layers.is_empty() {
            launch(broker, source, handler, scope, options, ctx)
        } else {
            let handler = Layered::new(handler, &layers);
            launch(broker, source, handler, scope, options, ctx)
        }
    }

    fn describe(&self, prefix: &str, format: Format) -> SubscriberInfo {
        describe_route(&self.source, prefix, &self.options, format)
    }
}

/// `source` under a router's `prefix`, or an error naming the handler where the source
/// cannot take one.
pub(crate) fn prefixed<B: Broker, S: SubscriptionSource<B>>(
    source: S,
    prefix: &str,
    options: &SubscriberOptions,
) -> Result<S, AppError> {
    if prefix.is_empty() {
        return Ok(source);
    }
    source.with_prefix(prefix).map_err(|source| {
        let destination = source.name().to_owned();
        AppError::Unsupported {
            handler: options.name.clone().unwrap_or_else(|| destination.clone()),
            destination,
            needs: "a router prefix on its descriptor (`SubscriptionSource::with_prefix`)",
            fix: format!(
                "mount it on a router without a prefix, or write `{prefix}` into the descriptor's name"
            ),
        }
    })
}

/// What a route is, under `prefix`: a source that cannot take the prefix is listed under
/// its own name (the app refuses to start it).
pub(crate) fn describe_route<B: Broker, S: SubscriptionSource<B> + Clone>(
    source: &S,
    prefix: &str,
    options: &SubscriberOptions,
    format: Format,
) -> SubscriberInfo {
    let under_prefix = prefixed(source.clone(), prefix, options);
    let mut info = match &under_prefix {
        Ok(prefixed) => options.describe(prefixed.name(), format),
        Err(_) => options.describe(source.name(), format),
    };
    info.operation_bindings = source.operation_bindings();
    info
}

/// Refuses options the subscription's broker cannot honour, by its capabilities.
fn check_capabilities(
    scope: &Scope,
    options: &SubscriberOptions,
    capabilities: crate::Capabilities,
) -> Result<(), AppError> {
    let Some(max_attempts) = options.failures.max_attempts else {
        return Ok(());
    };
    if capabilities.requeue && !capabilities.redelivery_count {
        return Err(AppError::Unsupported {
            handler: scope.handler.clone(),
            destination: scope.destination.clone(),
            needs: "redelivery counts for `max_attempts`",
            fix: format!(
                "its broker redelivers but does not count deliveries, so `max_attempts({max_attempts})` could never be reached: remove it, or use `FailurePolicy::RetryInPlace`, whose attempts the runtime counts"
            ),
        });
    }
    if !capabilities.requeue {
        tracing::warn!(handler = %scope.handler, destination = %scope.destination, max_attempts, "`max_attempts` has no effect here: this subscription's broker does not redeliver, so every message gets one attempt");
    }
    Ok(())
}

/// What a subscription shares with each of its deliveries, from its options and route.
pub(crate) fn scope_for<B: RuntimeBroker>(
    destination: String,
    options: &SubscriberOptions,
    ctx: &RouteContext,
) -> Scope {
    Scope {
        id: super::message::next_scope_id(),
        system: super::system_of::<B>(),
        handler: options.name.clone().unwrap_or_else(|| destination.clone()),
        destination,
        format: options.format.unwrap_or(ctx.format),
        state: Arc::clone(&ctx.state),
        own_producer: ctx.own_producer.clone(),
        // Until the first subscribe says what the subscription can do.
        capabilities: crate::Capabilities::DEFAULT,
    }
}

/// Subscribes once (so a bad subscriber fails the start), then spawns the loop.
fn launch<B, S, I>(
    broker: B,
    source: S,
    invoke: I,
    mut scope: Scope,
    options: SubscriberOptions,
    ctx: RouteContext,
) -> BoxFuture<'static, Result<JoinHandle<()>, AppError>>
where
    B: RuntimeBroker,
    S: SubscriptionSource<B> + Clone + Send + Sync + 'static,
    S::Subscriber: 'static,
    I: Invoke<S::Subscriber>,
{
    let up = ctx.health.subscription(&scope.handler, &scope.destination);
    Box::pin(async move {
        let first =
            source
                .clone()
                .subscribe(&broker)
                .await
                .map_err(|error| AppError::Subscribe {
                    handler: scope.handler.clone(),
                    destination: scope.destination.clone(),
                    source: error.into(),
                })?;
        scope.capabilities = first.capabilities();
        check_capabilities(&scope, &options, scope.capabilities)?;
        let pipeline = Pipeline {
            invoke,
            settler: Settler {
                broker,
                scope,
                options,
                observers: ctx.observers,
                publisher: ctx.publisher,
                stop_app: ctx.stop_app,
            },
            intake: ctx.intake.clone(),
        };
        up.set(true);
        Ok(tokio::spawn(run(pipeline, source, first, ctx.intake, up)))
    })
}

/// The subscription's task: consumes until intake stops, subscribing again whenever the
/// subscription ends or fails.
async fn run<B, S, I>(
    pipeline: Pipeline<B, I>,
    source: S,
    first: S::Subscriber,
    intake: StopSignal,
    up: Arc<Flag>,
) where
    B: RuntimeBroker,
    S: SubscriptionSource<B> + Clone + Send + Sync + 'static,
    I: Invoke<S::Subscriber>,
{
    let scope = pipeline.scope();
    let mut failures = 0u32;
    let mut first = Some(first);
    while !intake.is_cancelled() {
        let subscribed = match first.take() {
            Some(subscriber) => Ok(subscriber),
            None => tokio::select! {
                biased;
                () = intake.cancelled() => return,
                subscribed = source.clone().subscribe(&pipeline.settler.broker) => subscribed,
            },
        };
        match subscribed {
            Ok(mut subscriber) => {
                if failures > 0 {
                    tracing::info!(handler = %scope.handler, destination = %scope.destination, "resubscribed");
                }
                failures = 0;
                up.set(true);
                let end = consume(&pipeline, &mut subscriber, &intake).await;
                up.set(false);
                match end {
                    End::Stopped => return,
                    End::Ended => tracing::warn!(
                        handler = %scope.handler,
                        destination = %scope.destination,
                        "the subscription ended unexpectedly; subscribing again"
                    ),
                    End::Failed(error) => tracing::warn!(
                        handler = %scope.handler,
                        destination = %scope.destination,
                        %error,
                        "the subscription failed; subscribing again"
                    ),
                }
            }
            Err(error) => tracing::warn!(
                handler = %scope.handler,
                destination = %scope.destination,
                %error,
                attempt = failures + 1,
                "subscribing failed; trying again"
            ),
        }
        failures = failures.saturating_add(1);
        tokio::select! {
            biased;
            () = intake.cancelled() => return,
            () = tokio::time::sleep(RESUBSCRIBE.delay(failures)) => {}
        }
    }
}
