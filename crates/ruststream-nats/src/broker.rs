//! [`NatsBroker`]: the connection, its lifecycle, subscribing by subject and requests.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{Client, ConnectOptions, ServerAddr};
use bytes::Bytes;
use ruststream::kit::{Backoff, Shutdown};
use ruststream::{Broker, OutgoingMessage, Reply, RequestReply, Subscribe};

use crate::config::{Auth, Config};
use crate::error::NatsError;
use crate::message::headers_from_nats;
use crate::publisher::{check_subject, headers_to_nats};
use crate::source::NatsSource;
use crate::subscriber::NatsSubscriber;

/// A connection to a NATS server (or cluster). Cheap to clone: clones share the
/// connection.
///
/// It is the app's broker ([`Broker`], [`Subscribe`] by core subject,
/// [`Publisher`](ruststream::Publisher), [`RequestReply`],
/// [`DescribeServer`](ruststream::DescribeServer)); richer subscriptions (queue groups,
/// JetStream consumers) go through [`NatsSource`], and publishes acknowledged by a
/// JetStream stream through [`NatsBroker::jetstream_publisher`].
#[derive(Clone)]
pub struct NatsBroker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    client: OnceLock<Client>,
    jetstream: OnceLock<jetstream::Context>,
    connecting: tokio::sync::Mutex<()>,
    /// Set by `shutdown`: streams end, publishes and settlements fail.
    pub(crate) closed: Shutdown,
    /// Routes in process instead of through a server ([`NatsBroker::in_process`]).
    #[cfg(feature = "testing")]
    pub(crate) in_process: Option<ruststream::testing::TestClient>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("NatsBroker");
        debug
            .field("servers", &self.inner.config.redacted_servers())
            .field("connected", &self.inner.client.get().is_some())
            .field("closed", &self.inner.closed.is_triggered());
        #[cfg(feature = "testing")]
        debug.field("in_process", &self.inner.in_process.is_some());
        debug.finish()
    }
}

impl NatsBroker {
    /// A broker for `config`, not yet connected (the app connects it on start).
    pub fn new(config: Config) -> Self {
        Self::build(
            config,
            #[cfg(feature = "testing")]
            None,
        )
    }

    pub(crate) fn build(
        config: Config,
        #[cfg(feature = "testing")] in_process: Option<ruststream::testing::TestClient>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                client: OnceLock::new(),
                jetstream: OnceLock::new(),
                connecting: tokio::sync::Mutex::new(()),
                closed: Shutdown::new(),
                #[cfg(feature = "testing")]
                in_process,
            }),
        }
    }

    /// The config this broker was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The async-nats client, once connected: for whatever this crate does not wrap.
    /// An in-process broker has none.
    pub fn client(&self) -> Result<&Client, NatsError> {
        if self.inner.closed.is_triggered() {
            return Err(NatsError::Closed);
        }
        match self.inner.client.get() {
            Some(client) => Ok(client),
            #[cfg(feature = "testing")]
            None if self.inner.in_process.is_some() => Err(NatsError::Config(
                "an in-process NatsBroker (for tests) has no NATS client; use `NatsBroker::new(config)` to reach a server".to_owned(),
            )),
            None => Err(NatsError::NotConnected),
        }
    }

    /// The JetStream context on this connection, once connected.
    pub fn jetstream(&self) -> Result<&jetstream::Context, NatsError> {
        self.client()?;
        self.inner.jetstream.get().ok_or(NatsError::NotConnected)
    }

    /// A publisher that sends through JetStream and returns once the stream has stored
    /// the message (its publish acknowledgement). A `message-id` header becomes
    /// `Nats-Msg-Id`, so the stream drops a duplicate within its duplicate window.
    pub fn jetstream_publisher(&self) -> crate::JetStreamPublisher {
        crate::JetStreamPublisher::new(self.clone())
    }

    /// `text` with every secret of the config redacted.
    pub(crate) fn redact(&self, text: impl std::fmt::Display) -> String {
        self.inner.config.redact(text)
    }

    /// A round trip to the server: every command sent before it has been processed
    /// when it returns (a request nobody answers comes back as "no responders").
    pub(crate) async fn round_trip(&self) -> Result<(), NatsError> {
        let client = self.client()?;
        let probe = client.new_inbox();
        match tokio::time::timeout(
            self.inner.config.request_timeout,
            client.request(probe, Bytes::new()),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) if error.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
            Ok(Err(error)) => Err(NatsError::Subscribe {
                subject: "(round trip)".to_owned(),
                reason: self.redact(error),
            }),
            Err(_) => Err(NatsError::Subscribe {
                subject: "(round trip)".to_owned(),
                reason: format!(
                    "the server did not answer within {:?}",
                    self.inner.config.request_timeout
                ),
            }),
        }
    }

    fn options(&self) -> Result<ConnectOptions, NatsError> {
        let config = &self.inner.config;
        let mut options = match &config.auth {
            Auth::None | Auth::CredentialsFile(_) => ConnectOptions::new(),
            Auth::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.expose().to_owned())
            }
            Auth::Token(token) => ConnectOptions::with_token(token.expose().to_owned()),
            Auth::NKeySeed(seed) => ConnectOptions::with_nkey(seed.expose().to_owned()),
        };
        if let Some(name) = &config.name {
            options = options.name(name);
        }
        if config.tls.is_required() {
            options = options.require_tls(true);
        }
        for ca in config.tls.roots() {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = config.tls.client() {
            options = options.add_client_certificate(cert.to_owned(), key.to_owned());
        }
        // 50 ms doubling up to the configured maximum, without jitter.
        let backoff =
            Backoff::exponential(Duration::from_millis(50), config.reconnect_delay_max).jitter(0.0);
        options = options
            .connection_timeout(config.connection_timeout)
            .max_reconnects(config.max_reconnects)
            .request_timeout(Some(config.request_timeout))
            .subscription_capacity(config.subscription_capacity)
            .reconnect_delay_callback(move |attempts| {
                backoff.delay(
                    u32::try_from(attempts)
                        .unwrap_or(u32::MAX)
                        .saturating_add(1),
                )
            })
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::warn!("NATS connection lost; reconnecting");
                    }
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    other => tracing::debug!(event = %other, "NATS connection event"),
                }
            });
        if config.retry_on_initial_connect {
            options = options.retry_on_initial_connect();
        }
        Ok(options)
    }

    fn server_addrs(&self) -> Result<Vec<ServerAddr>, NatsError> {
        self.inner
            .config
            .servers
            .iter()
            .map(|url| {
                ServerAddr::from_str(url).map_err(|error| {
                    NatsError::Config(format!(
                        "server URL `{}` is not valid: {}; use `nats://host:4222`",
                        ruststream::kit::redact_url(url),
                        self.redact(error)
                    ))
                })
            })
            .collect()
    }

    async fn open(&self) -> Result<Client, NatsError> {
        let config = &self.inner.config;
        if config.servers.is_empty() {
            return Err(NatsError::Config("no server URL".to_owned()));
        }
        let addrs = self.server_addrs()?;
        let mut options = self.options()?;
        if let Auth::CredentialsFile(path) = &config.auth {
            options = options.credentials_file(path).await.map_err(|error| {
                NatsError::Config(format!(
                    "cannot read the credentials file `{}`: {}",
                    path.display(),
                    self.redact(error)
                ))
            })?;
        }
        let servers = config.redacted_servers().join(", ");
        // Each server gets the connection timeout; the whole attempt is bounded too.
        let bound = config.connection_timeout * u32::try_from(addrs.len().max(1)).unwrap_or(1)
            + Duration::from_secs(1);
        let connect = options.connect(addrs);
        if config.retry_on_initial_connect {
            return connect.await.map_err(|error| NatsError::Connect {
                servers,
                reason: self.redact(error),
            });
        }
        match tokio::time::timeout(bound, connect).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(NatsError::Connect {
                servers,
                reason: self.redact(error),
            }),
            Err(_) => Err(NatsError::Connect {
                servers,
                reason: format!("no connection within {bound:?}"),
            }),
        }
    }
}

impl Broker for NatsBroker {
    type Error = NatsError;

    fn server(&self) -> Option<ruststream::ServerSpec> {
        Some(ruststream::DescribeServer::describe_server(self))
    }

    async fn connect(&self) -> Result<(), NatsError> {
        if self.inner.closed.is_triggered() {
            return Err(NatsError::Closed);
        }
        if self.inner.client.get().is_some() {
            return Ok(());
        }
        #[cfg(feature = "testing")]
        if let Some(router) = &self.inner.in_process {
            return self.connect_in_process(router).await;
        }
        let _guard = self.inner.connecting.lock().await;
        if self.inner.client.get().is_some() {
            return Ok(());
        }
        let client = self.open().await?;
        let context = jetstream::ContextBuilder::new()
            .timeout(self.inner.config.request_timeout)
            .build(client.clone());
        // Set under the lock, once: the cells were empty.
        let _ = self.inner.jetstream.set(context);
        let _ = self.inner.client.set(client);
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), NatsError> {
        // Subscribers check the signal per message, and it wakes the idle ones.
        if !self.inner.closed.trigger() {
            return Ok(());
        }
        #[cfg(feature = "testing")]
        if let Some(router) = &self.inner.in_process {
            return Self::shutdown_in_process(router).await;
        }
        let Some(client) = self.inner.client.get() else {
            return Ok(());
        };
        let bound = self.inner.config.shutdown_timeout;
        // One deadline for the whole teardown: pending publishes and acks go out first,
        // then every subscription is drained and the connection closes.
        let deadline = tokio::time::Instant::now() + bound;
        let flushed = match tokio::time::timeout_at(deadline, client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(NatsError::Shutdown(format!(
                "flushing pending messages failed: {}",
                self.redact(error)
            ))),
            Err(_) => Err(NatsError::Shutdown(format!(
                "pending messages were not flushed within {bound:?}"
            ))),
        };
        let drain_deadline = deadline.max(tokio::time::Instant::now() + Duration::from_millis(100));
        let drained = match tokio::time::timeout_at(drain_deadline, client.drain()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(NatsError::Shutdown(format!(
                "closing the connection failed: {}",
                self.redact(error)
            ))),
            Err(_) => Err(NatsError::Shutdown(format!(
                "the connection did not close within {bound:?}"
            ))),
        };
        flushed.and(drained)
    }
}

impl Subscribe for NatsBroker {
    type Subscriber = NatsSubscriber;

    /// Subscribes to a core subject (wildcards allowed), every message to this
    /// subscriber. For queue groups and JetStream, use [`NatsSource`].
    async fn subscribe(&self, name: &str) -> Result<NatsSubscriber, NatsError> {
        NatsSource::new(name).open(self).await
    }
}

impl RequestReply for NatsBroker {
    /// A core NATS request: the reply comes to a fresh inbox of this connection. With
    /// no subscriber on the subject the server answers "no responders" at once.
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, NatsError> {
        #[cfg(feature = "testing")]
        if let Some(router) = &self.inner.in_process {
            return self.request_in_process(router, msg, timeout).await;
        }
        let client = self.client()?;
        check_subject(msg.name())?;
        let mut request = async_nats::Request::new()
            .payload(Bytes::copy_from_slice(msg.payload()))
            .timeout(Some(timeout));
        if !msg.headers().is_empty() {
            request = request.headers(headers_to_nats(msg.headers())?);
        }
        let failed = |reason: String| NatsError::Request {
            subject: msg.name().to_owned(),
            reason,
        };
        let reply = tokio::time::timeout(
            timeout + Duration::from_millis(500),
            client.send_request(msg.name().to_owned(), request),
        )
        .await
        .map_err(|_| failed(format!("no reply within {timeout:?}")))?
        .map_err(|error| match error.kind() {
            async_nats::RequestErrorKind::NoResponders => {
                failed("no subscriber listens on the subject (no responders)".to_owned())
            }
            async_nats::RequestErrorKind::TimedOut => {
                failed(format!("no reply within {timeout:?}"))
            }
            _ => failed(self.redact(error)),
        })?;
        Ok(Reply {
            payload: reply.payload,
            headers: reply
                .headers
                .as_ref()
                .map(headers_from_nats)
                .unwrap_or_default(),
        })
    }
}
