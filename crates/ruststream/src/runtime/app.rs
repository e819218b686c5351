//! [`App`]: brokers, their routers, shared state and lifecycle hooks, run as one service.

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::message::StateMap;
use super::middleware::{BoxedLayer, BoxedPublishLayer, LayeredPublisher};
use super::observe::{Observer, Observers};
use super::route::{MountedRoute, RouteContext};
use super::stop::StopSignal;

use super::{
    BoxHandlerService, BoxPublishService, Format, HandlerRequest, Health, Outcome, Producer,
    PublishRequest, Router, RuntimeBroker, SubscriberInfo,
};
use crate::BoxError;
use tower::{Layer, Service};

/// How long shutdown waits for in-flight handlers by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send>;

/// What an app says about itself (AsyncAPI `info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// The service's title.
    pub title: String,
    /// Its version.
    pub version: String,
    /// What it does.
    pub description: Option<String>,
}

/// One broker of an app and its subscribers, as [`App::describe`] reports them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BrokerInfo {
    /// The broker's type.
    pub broker: &'static str,
    /// Its server, as the broker describes it (no credentials), if it has the
    /// [`DescribeServer`](crate::DescribeServer) capability.
    pub server: Option<crate::ServerSpec>,
    /// Its subscribers, prefixes applied.
    pub subscribers: Vec<SubscriberInfo>,
}

/// Everything an app registers: what AsyncAPI documents and the CLI list.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AppDescription {
    /// Title, version, description.
    pub info: AppInfo,
    /// Each broker with its subscribers, in the order added.
    pub brokers: Vec<BrokerInfo>,
}

/// Why an app could not start, run or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A lifespan hook failed.
    #[error("the {phase} hook failed: {source}")]
    Hook {
        /// `on_startup`, `after_startup`, `on_shutdown` or `after_shutdown`.
        phase: &'static str,
        /// What the hook returned.
        source: BoxError,
    },
    /// A broker did not connect.
    #[error("broker `{broker}` did not connect: {source}")]
    Connect {
        /// The broker's type.
        broker: &'static str,
        /// The broker's error.
        source: BoxError,
    },
    /// A broker did not shut down cleanly.
    #[error("broker `{broker}` did not shut down cleanly: {source}")]
    Shutdown {
        /// The broker's type.
        broker: &'static str,
        /// The broker's error.
        source: BoxError,
    },
    /// A subscriber could not subscribe at startup.
    #[error("handler `{handler}` could not subscribe to `{destination}`: {source}")]
    Subscribe {
        /// The handler's name.
        handler: String,
        /// What it subscribes to.
        destination: String,
        /// The broker's error.
        source: BoxError,
    },
    /// A handler's failure policy (`FailurePolicy::Stop`) stopped the service.
    #[error(
        "a handler's failure policy stopped the service (see the log for the handler and reason)"
    )]
    StoppedByPolicy,
    /// The HTTP endpoint could not listen.
    #[cfg(feature = "http")]
    #[error("the HTTP endpoint cannot listen on {addr}: {source}")]
    Http {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A subscriber needs a capability its broker does not have.
    #[error(
        "handler `{handler}` on `{destination}` needs {needs}, which its broker does not have: {fix}"
    )]
    Unsupported {
        /// The handler's name.
        handler: String,
        /// What it subscribes to.
        destination: String,
        /// The capability it needs.
        needs: &'static str,
        /// What to do about it.
        fix: String,
    },
    /// Listening for SIGINT/SIGTERM failed.
    #[error("cannot listen for shutdown signals: {0}")]
    Signal(#[source] std::io::Error),
}

/// A broker with its routes, type-erased so one app holds brokers of several kinds.
trait MountedBroker: Send + Sync {
    fn label(&self) -> &'static str;
    /// The messaging system ([`system_of`](super::system_of)), for health and metrics.
    fn system(&self) -> &'static str;
    fn describe(&self, format: Format) -> BrokerInfo;
    fn register(
        &mut self,
        state: &mut StateMap,
        format: Format,
        observers: &Arc<Observers>,
        publish_layers: &[BoxedPublishLayer],
    );
    fn connect(&self) -> BoxFuture<'_, Result<(), BoxError>>;
    fn start<'a>(
        &'a mut self,
        ctx: &'a RouteContext,
    ) -> BoxFuture<'a, Result<Vec<JoinHandle<()>>, AppError>>;
    fn shutdown(&self) -> BoxFuture<'_, Result<(), BoxError>>;
}

struct Mounted<B> {
    broker: B,
    /// Taken at start; behind a lock only so the app is `Sync` (its futures are `Send`).
    routes: Mutex<Vec<MountedRoute<B>>>,
    /// This broker's producer, which its own handlers get for a `Producer<B>` argument.
    producer: Option<Arc<Producer<B>>>,
    /// The broker's publish path with the app's publish layers, if any.
    publisher: Option<Arc<LayeredPublisher>>,
}

impl<B: RuntimeBroker> MountedBroker for Mounted<B> {
    fn label(&self) -> &'static str {
        std::any::type_name::<B>()
    }

    fn system(&self) -> &'static str {
        super::system_of::<B>()
    }

    fn describe(&self, format: Format) -> BrokerInfo {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let subscribers = routes
            .iter()
            .map(|mounted| {
                mounted
                    .route
                    .describe(&mounted.prefix, mounted.format.unwrap_or(format))
            })
            .collect();
        BrokerInfo {
            broker: self.label(),
            server: self.broker.server(),
            subscribers,
        }
    }

    fn register(
        &mut self,
        state: &mut StateMap,
        format: Format,
        observers: &Arc<Observers>,
        publish_layers: &[BoxedPublishLayer],
    ) {
        self.publisher = (!publish_layers.is_empty())
            .then(|| Arc::new(LayeredPublisher::new(self.broker.clone(), publish_layers)));
        let producer = Producer::new(self.broker.clone())
            .with_format(format)
            .with_observers(Arc::clone(observers))
            .with_publisher(self.publisher.clone());
        let producer = Arc::new(producer);
        state.insert(Arc::clone(&producer));
        self.producer = Some(producer);
    }

    fn connect(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        let broker = &self.broker;
        Box::pin(async move { broker.connect().await.map_err(Into::into) })
    }

    fn start<'a>(
        &'a mut self,
        ctx: &'a RouteContext,
    ) -> BoxFuture<'a, Result<Vec<JoinHandle<()>>, AppError>> {
        Box::pin(async move {
            let routes = std::mem::take(
                self.routes
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            let mut tasks = Vec::with_capacity(routes.len());
            for mounted in routes {
                let mut route_ctx = ctx.for_route(&mounted);
                route_ctx.publisher = self.publisher.clone();
                route_ctx.own_producer = self
                    .producer
                    .clone()
                    .map(|p| p as Arc<dyn Any + Send + Sync>);
                match mounted.route.start(self.broker.clone(), route_ctx).await {
                    Ok(task) => tasks.push(task),
                    Err(error) => {
                        ctx.intake.cancel();
                        return Err(error);
                    }
                }
            }
            Ok(tasks)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        let broker = &self.broker;
        Box::pin(async move { broker.shutdown().await.map_err(Into::into) })
    }
}

/// A service: one or more brokers with their routers, shared state and lifespan hooks.
///
/// [`run`](Self::run) starts it and serves until SIGINT or SIGTERM, then shuts down
/// gracefully: intake stops, in-flight handlers get [`shutdown_timeout`](Self::shutdown_timeout)
/// to finish (what does not finish is left unsettled, so the broker redelivers it), and
/// brokers close in reverse order.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use ruststream::memory::MemoryBroker;
/// use ruststream::runtime::{handler_fn, App, Router, SubscriberDef};
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// let app = App::new("orders")
///     .version("1.2.0")
///     .broker(
///         MemoryBroker::new(),
///         Router::new().subscriber(SubscriberDef::new("orders.created", handler_fn(|order: Order| async move {
///             println!("order {}", order.id);
///         }))),
///     );
/// # let _ = app;
/// # }
/// ```
pub struct App {
    info: AppInfo,
    format: Format,
    state: StateMap,
    brokers: Vec<Box<dyn MountedBroker>>,
    on_startup: Vec<Hook>,
    after_startup: Vec<Hook>,
    on_shutdown: Vec<Hook>,
    after_shutdown: Vec<Hook>,
    shutdown_timeout: Duration,
    observers: Observers,
    layers: Vec<BoxedLayer>,
    publish_layers: Vec<BoxedPublishLayer>,
    /// Where the HTTP endpoint listens, if it is on.
    #[cfg(feature = "http")]
    http: Option<std::net::SocketAddr>,
    /// The metrics the HTTP endpoint serves, if any.
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Metrics>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("info", &self.info)
            .field("format", &self.format)
            .field(
                "brokers",
                &self.brokers.iter().map(|b| b.label()).collect::<Vec<_>>(),
            )
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

fn hook<F, Fut, E>(hook: F) -> Hook
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    Box::new(move || Box::pin(async move { hook().await.map_err(Into::into) }))
}

async fn run_hooks(phase: &'static str, hooks: Vec<Hook>) -> Result<(), AppError> {
    for hook in hooks {
        hook()
            .await
            .map_err(|source| AppError::Hook { phase, source })?;
    }
    Ok(())
}

impl App {
    /// An app titled `title`, version `0.1.0`, JSON payloads.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            info: AppInfo {
                title: title.into(),
                version: "0.1.0".into(),
                description: None,
            },
            format: Format::Json,
            state: StateMap::default(),
            brokers: Vec::new(),
            on_startup: Vec::new(),
            after_startup: Vec::new(),
            on_shutdown: Vec::new(),
            after_shutdown: Vec::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            observers: Observers::default(),
            layers: Vec::new(),
            publish_layers: Vec::new(),
            #[cfg(feature = "http")]
            http: None,
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// Sets the version.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.info.version = version.into();
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.info.description = Some(description.into());
        self
    }

    /// The app's title, version and description.
    pub fn info(&self) -> &AppInfo {
        &self.info
    }

    /// Everything registered: brokers and their subscribers with prefixes and formats
    /// resolved. Starts nothing.
    pub fn describe(&self) -> AppDescription {
        AppDescription {
            info: self.info.clone(),
            brokers: self
                .brokers
                .iter()
                .map(|broker| broker.describe(self.format))
                .collect(),
        }
    }

    /// The payload format of every router and subscriber that sets none (default JSON).
    #[must_use]
    pub fn format(mut self, format: impl Into<Format>) -> Self {
        self.format = format.into();
        self
    }

    /// Shares `value` with every handler, which takes it as a `State<T>` argument.
    #[must_use]
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(Arc::new(value));
        self
    }

    /// Shares an already shared value with every handler (`State<T>` argument); keep a
    /// clone of the `Arc` to read it from outside.
    #[must_use]
    pub fn state_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.state.insert(value);
        self
    }

    /// Adds a broker with its router. Brokers connect in the order added and close in
    /// reverse. Handlers of any broker can publish to any other through its
    /// [`Producer`] argument.
    #[must_use]
    pub fn broker<B: RuntimeBroker>(mut self, broker: B, router: Router<B>) -> Self {
        let routes = router.flatten("", None, &[]);
        self.brokers.push(Box::new(Mounted {
            broker,
            routes: Mutex::new(routes),
            producer: None,
            publisher: None,
        }));
        self
    }

    /// Runs `hook` before the brokers connect; an error aborts the start.
    #[must_use]
    pub fn on_startup<F, Fut, E>(mut self, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.on_startup.push(hook(f));
        self
    }

    /// Runs `hook` once every subscription has started.
    #[must_use]
    pub fn after_startup<F, Fut, E>(mut self, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.after_startup.push(hook(f));
        self
    }

    /// Runs `hook` when shutdown begins, before intake stops.
    #[must_use]
    pub fn on_shutdown<F, Fut, E>(mut self, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.on_shutdown.push(hook(f));
        self
    }

    /// Runs `hook` after the brokers have closed.
    #[must_use]
    pub fn after_shutdown<F, Fut, E>(mut self, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.after_shutdown.push(hook(f));
        self
    }

    /// Installs an observer of every message's life (test harnesses, metrics).
    #[must_use]
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// Records Prometheus metrics of every message (feature `metrics`), labelled with the
    /// app's title; the HTTP endpoint ([`http`](Self::http)) serves them at `/metrics`.
    /// To read them elsewhere, build the [`Metrics`](crate::metrics::Metrics) yourself and
    /// pass it to [`with_metrics`](Self::with_metrics).
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metrics(self) -> Self {
        let metrics = crate::metrics::Metrics::new(&self.info.title);
        self.with_metrics(metrics)
    }

    /// Records metrics into `metrics` (a clone shares its registry), and serves them at
    /// the HTTP endpoint's `/metrics`.
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.observers.push(Arc::new(metrics.clone()));
        self.metrics = Some(metrics);
        self
    }

    /// Serves the HTTP endpoint (feature `http`) on `addr` while the app runs:
    /// `/metrics`, `/health/live`, `/health/ready`, and the AsyncAPI document at
    /// `/asyncapi`, `/asyncapi.json` and `/asyncapi.yaml` (feature `asyncapi`). It listens
    /// from the start of [`start`](Self::start), so liveness answers while the brokers
    /// connect, and stops with the app. Port 0 picks a free port:
    /// [`RunningApp::http_addr`] tells which.
    #[cfg(feature = "http")]
    #[must_use]
    pub fn http(mut self, addr: impl Into<std::net::SocketAddr>) -> Self {
        self.http = Some(addr.into());
        self
    }

    /// What the HTTP endpoint serves and where, if it is on.
    #[cfg(feature = "http")]
    fn http_endpoint(
        &self,
        health: &Health,
    ) -> Option<(std::net::SocketAddr, crate::http::Endpoint)> {
        let addr = self.http?;
        let endpoint = crate::http::Endpoint::new(health.clone());
        #[cfg(feature = "asyncapi")]
        let endpoint = endpoint.asyncapi(crate::asyncapi::document(&self.describe()));
        #[cfg(feature = "metrics")]
        let endpoint = match &self.metrics {
            Some(metrics) => endpoint.metrics(metrics.clone()),
            None => endpoint,
        };
        Some((addr, endpoint))
    }

    /// Wraps every handler of the app in a tower layer, outside router and subscriber
    /// layers.
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

    /// Wraps every publish of the app (producers, replies, dead letters) in a
    /// tower layer; layers added first sit closest to the broker.
    #[must_use]
    pub fn publish_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxPublishService> + Send + Sync + 'static,
        L::Service:
            for<'a> Service<PublishRequest<'a>, Response = ()> + Clone + Send + Sync + 'static,
        for<'a> <L::Service as Service<PublishRequest<'a>>>::Error: Into<BoxError>,
        for<'a> <L::Service as Service<PublishRequest<'a>>>::Future: Send,
    {
        self.publish_layers.push(BoxedPublishLayer::new(layer));
        self
    }

    /// How long shutdown waits for in-flight handlers (default 30 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Starts the service: startup hooks, brokers connected, subscriptions running,
    /// after-startup hooks. Stop it with [`RunningApp::shutdown`].
    pub async fn start(mut self) -> Result<RunningApp, AppError> {
        let health = Health::default();
        #[cfg(feature = "http")]
        let http = match self.http_endpoint(&health) {
            Some((addr, endpoint)) => Some(serve_http(addr, endpoint).await?),
            None => None,
        };
        run_hooks("on_startup", std::mem::take(&mut self.on_startup)).await?;
        let observers = Arc::new(std::mem::take(&mut self.observers));
        for broker in &mut self.brokers {
            broker.register(
                &mut self.state,
                self.format,
                &observers,
                &self.publish_layers,
            );
        }
        let mut connected: Vec<Box<dyn MountedBroker>> = Vec::with_capacity(self.brokers.len());
        for broker in self.brokers {
            let up = health.broker(broker.system());
            if let Err(source) = broker.connect().await {
                let label = broker.label();
                close_all(&connected).await;
                return Err(AppError::Connect {
                    broker: label,
                    source,
                });
            }
            up.set(true);
            tracing::info!(broker = broker.label(), "connected");
            connected.push(broker);
        }
        // A `Stop` policy stops intake at once, before the app shuts down.
        let stop_app = StopSignal::new();
        let ctx = RouteContext {
            prefix: String::new(),
            format: self.format,
            state: Arc::new(self.state),
            intake: stop_app.child(),
            stop_app,
            observers: Arc::clone(&observers),
            layers: self.layers.into(),
            publisher: None,
            own_producer: None,
            health: health.clone(),
        };
        let mut tasks = Vec::new();
        for broker in &mut connected {
            match broker.start(&ctx).await {
                Ok(started) => tasks.extend(started),
                Err(error) => {
                    ctx.intake.cancel();
                    for task in tasks {
                        let _ = task.await;
                    }
                    close_all(&connected).await;
                    return Err(error);
                }
            }
        }
        tracing::info!(app = %self.info.title, subscriptions = tasks.len(), "started");
        let running = RunningApp {
            info: self.info,
            intake: ctx.intake,
            stop_app: ctx.stop_app,
            tasks,
            brokers: connected,
            on_shutdown: self.on_shutdown,
            after_shutdown: self.after_shutdown,
            shutdown_timeout: self.shutdown_timeout,
            health,
            #[cfg(feature = "http")]
            http,
        };
        if let Err(error) = run_hooks("after_startup", self.after_startup).await {
            // Stop what was started, so nothing keeps running behind the error.
            running.intake.cancel();
            for task in running.tasks {
                let _ = task.await;
            }
            close_all(&running.brokers).await;
            return Err(error);
        }
        running.health.set_started();
        Ok(running)
    }

    /// Starts the service and serves until SIGINT or SIGTERM (or a `Stop` failure
    /// policy), then shuts down gracefully.
    pub async fn run(self) -> Result<(), AppError> {
        let signals = shutdown_signal()?;
        self.run_until(signals).await
    }

    /// Starts the service and serves until `signal` completes (or a `Stop` failure policy
    /// fires), then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let running = self.start().await?;
        let stopped_by_policy = tokio::select! {
            () = signal => false,
            () = running.stop_app.cancelled() => true,
        };
        tracing::info!("shutting down");
        running.shutdown().await?;
        if stopped_by_policy {
            Err(AppError::StoppedByPolicy)
        } else {
            Ok(())
        }
    }
}

/// Binds the HTTP endpoint.
#[cfg(feature = "http")]
async fn serve_http(
    addr: std::net::SocketAddr,
    endpoint: crate::http::Endpoint,
) -> Result<crate::http::HttpServer, AppError> {
    let server = crate::http::HttpServer::bind(addr, endpoint)
        .await
        .map_err(|source| AppError::Http { addr, source })?;
    tracing::info!(address = %server.local_addr(), "the HTTP endpoint listens");
    Ok(server)
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send, AppError> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AppError::Signal)?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn close_all(brokers: &[Box<dyn MountedBroker>]) -> Option<AppError> {
    let mut first_error = None;
    for broker in brokers.iter().rev() {
        match broker.shutdown().await {
            Ok(()) => tracing::info!(broker = broker.label(), "closed"),
            Err(source) => {
                tracing::error!(broker = broker.label(), error = %source, "closing the broker failed");
                first_error.get_or_insert(AppError::Shutdown {
                    broker: broker.label(),
                    source,
                });
            }
        }
    }
    first_error
}

/// A started app.
pub struct RunningApp {
    info: AppInfo,
    intake: StopSignal,
    stop_app: StopSignal,
    tasks: Vec<JoinHandle<()>>,
    brokers: Vec<Box<dyn MountedBroker>>,
    on_shutdown: Vec<Hook>,
    after_shutdown: Vec<Hook>,
    shutdown_timeout: Duration,
    health: Health,
    /// The HTTP endpoint, stopped when this is dropped.
    #[cfg(feature = "http")]
    http: Option<crate::http::HttpServer>,
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp")
            .field("info", &self.info)
            .field("subscriptions", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl RunningApp {
    /// The app's title, version and description.
    pub fn info(&self) -> &AppInfo {
        &self.info
    }

    /// Whether the app is ready: every broker connected, every subscription consuming.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Where the HTTP endpoint listens (the port chosen when it was asked for port 0),
    /// if [`App::http`] turned it on.
    #[cfg(feature = "http")]
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(crate::http::HttpServer::local_addr)
    }

    /// Completes when a handler's `Stop` failure policy asks the service to stop.
    pub async fn stop_requested(&self) {
        self.stop_app.cancelled().await;
    }

    /// Shuts down gracefully: on-shutdown hooks, intake stopped, in-flight handlers given
    /// the shutdown timeout (unfinished messages are left unsettled for redelivery),
    /// brokers closed in reverse order, after-shutdown hooks.
    pub async fn shutdown(self) -> Result<(), AppError> {
        self.health.set_stopping();
        let hooks = run_hooks("on_shutdown", self.on_shutdown).await;
        self.intake.cancel();
        let mut tasks = self.tasks;
        let drained = tokio::time::timeout(
            self.shutdown_timeout,
            futures::future::join_all(tasks.iter_mut()),
        )
        .await;
        if drained.is_err() {
            let unfinished = tasks.iter().filter(|task| !task.is_finished()).count();
            tracing::warn!(
                unfinished,
                timeout = ?self.shutdown_timeout,
                "handlers still running at the shutdown timeout were cancelled; their messages are left unsettled for redelivery"
            );
            for task in &tasks {
                task.abort();
            }
            for task in tasks {
                let _ = task.await;
            }
        }
        let closed = close_all(&self.brokers).await;
        hooks?;
        if let Some(error) = closed {
            return Err(error);
        }
        run_hooks("after_shutdown", self.after_shutdown).await
    }
}
