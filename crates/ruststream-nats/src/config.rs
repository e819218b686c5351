//! [`Config`]: where the NATS server is and how to reach it.
//!
//! There is no `Default`: a server URL has no sane default, so [`Config::new`] takes it.
//! Every other setting has a default that suits a service on a LAN and a builder method.
//! Secrets (passwords, tokens, NKey seeds, passwords inside URLs) never appear in the
//! `Debug` output, in errors, in logs or in the AsyncAPI description.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ruststream::kit::{Redactor, Secret, Tls, redact_url};

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    /// None, or whatever the URLs carry (`nats://user:pass@host`).
    None,
    UserPassword {
        user: String,
        password: Secret,
    },
    Token(Secret),
    NKeySeed(Secret),
    CredentialsFile(PathBuf),
}

/// How a [`NatsBroker`](crate::NatsBroker) reaches its server.
///
/// ```
/// use std::time::Duration;
/// use ruststream_nats::Config;
///
/// let config = Config::new("nats://127.0.0.1:4222")
///     .name("orders-service")
///     .user_and_password("orders", "s3cret")
///     .connection_timeout(Duration::from_secs(3))
///     .max_reconnects(None);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) servers: Vec<String>,
    pub(crate) name: Option<String>,
    pub(crate) auth: Auth,
    pub(crate) tls: Tls,
    pub(crate) connection_timeout: Duration,
    pub(crate) max_reconnects: Option<usize>,
    pub(crate) reconnect_delay_max: Duration,
    pub(crate) retry_on_initial_connect: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) ack_timeout: Duration,
    pub(crate) confirmed_acks: bool,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) subscription_capacity: usize,
    pub(crate) jetstream_publish: bool,
}

impl Config {
    /// A connection to the server at `url` (`nats://host:4222`, `tls://host:4222`, or
    /// `host:4222`). Credentials may be in the URL (`nats://user:pass@host:4222`); they
    /// are redacted wherever the URL is shown.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            servers: vec![url.into()],
            name: None,
            auth: Auth::None,
            tls: Tls::default(),
            connection_timeout: Duration::from_secs(5),
            max_reconnects: None,
            reconnect_delay_max: Duration::from_secs(4),
            retry_on_initial_connect: false,
            request_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(5),
            confirmed_acks: false,
            shutdown_timeout: Duration::from_secs(5),
            subscription_capacity: 65_536,
            jetstream_publish: false,
        }
    }

    /// More servers of the same cluster, tried in turn on connect and reconnect.
    #[must_use]
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.servers.push(url.into());
        self
    }

    /// The connection name the server shows in its monitoring (`connz`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Authenticates with a user name and password.
    #[must_use]
    pub fn user_and_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.auth = Auth::UserPassword {
            user: user.into(),
            password: Secret::new(password),
        };
        self
    }

    /// Authenticates with a token.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(Secret::new(token));
        self
    }

    /// Authenticates with an NKey seed (`SU...`).
    #[must_use]
    pub fn nkey_seed(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::NKeySeed(Secret::new(seed));
        self
    }

    /// Authenticates with a `.creds` file (a user JWT and its NKey seed), read on connect.
    #[must_use]
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredentialsFile(path.into());
        self
    }

    /// Refuses to talk to the server without TLS.
    #[must_use]
    pub fn require_tls(mut self, required: bool) -> Self {
        self.tls = self.tls.required(required);
        self
    }

    /// Trusts the CA certificates in this PEM file (besides the system's).
    #[must_use]
    pub fn root_certificates(mut self, pem: impl Into<PathBuf>) -> Self {
        self.tls = self.tls.root_certificates(pem);
        self
    }

    /// Presents this client certificate and key (PEM files) for mutual TLS.
    #[must_use]
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = self.tls.client_certificate(cert, key);
        self
    }

    /// How long one connection attempt may take (default 5 s).
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How many times to reconnect after the connection drops; `None` (the default)
    /// reconnects forever, which is what a service wants.
    #[must_use]
    pub fn max_reconnects(mut self, max: Option<usize>) -> Self {
        self.max_reconnects = max;
        self
    }

    /// The longest wait between reconnect attempts (default 4 s); the wait grows
    /// exponentially up to it.
    #[must_use]
    pub fn reconnect_delay_max(mut self, max: Duration) -> Self {
        self.reconnect_delay_max = max;
        self
    }

    /// Keeps trying when the server is not reachable at start-up, instead of failing
    /// `connect` (default off: a service that cannot reach its broker at start says so).
    #[must_use]
    pub fn retry_on_initial_connect(mut self, retry: bool) -> Self {
        self.retry_on_initial_connect = retry;
        self
    }

    /// The timeout of requests and of JetStream API calls and publish acknowledgements
    /// (default 10 s).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a confirmed JetStream ack, nak or term waits for the server
    /// (default 5 s; see [`confirmed_acks`](Self::confirmed_acks)).
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Whether a JetStream ack, nak or term waits for the server's confirmation (default
    /// `false`).
    ///
    /// By default a settlement is queued on the connection, as async-nats'
    /// `Message::ack` does, and the next message is handled while it is on its way;
    /// `shutdown` flushes what is queued. Delivery stays at least once: an ack that
    /// never arrives makes the server redeliver after the consumer's ack wait. With
    /// `true`, each settlement is a request the server answers within
    /// [`ack_timeout`](Self::ack_timeout), so a handler sees the outcome (a failed one is
    /// logged by the runtime), at the cost of a round trip per message.
    #[must_use]
    pub fn confirmed_acks(mut self, confirmed: bool) -> Self {
        self.confirmed_acks = confirmed;
        self
    }

    /// The bound on `shutdown`: flushing pending publishes and acks (default 5 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How many messages a core subscription buffers in the client (default 65 536).
    #[must_use]
    pub fn subscription_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity.max(1);
        self
    }

    /// Makes the broker's own publishes (`Publisher for NatsBroker`, so also the
    /// runtime's replies, retries and dead letters) go through JetStream and wait for
    /// the stream's acknowledgement (default off: core publishes). Every subject
    /// published to must then belong to a stream.
    #[must_use]
    pub fn jetstream_publish(mut self, enabled: bool) -> Self {
        self.jetstream_publish = enabled;
        self
    }

    /// The server URLs with any credentials replaced by `<redacted>`.
    pub fn redacted_servers(&self) -> Vec<String> {
        self.servers.iter().map(|url| redact_url(url)).collect()
    }

    /// What strips every secret of this config from a text: the passwords or tokens
    /// inside the URLs, and the password, token or seed of [`Auth`] (a user name alone
    /// is not a secret).
    pub(crate) fn redactor(&self) -> Redactor {
        let redactor = self
            .servers
            .iter()
            .fold(Redactor::new(), |redactor, url| redactor.url(url));
        match &self.auth {
            Auth::UserPassword { password, .. } => redactor.secret(password.expose()),
            Auth::Token(secret) | Auth::NKeySeed(secret) => redactor.secret(secret.expose()),
            Auth::None | Auth::CredentialsFile(_) => redactor,
        }
    }

    /// `text` with every secret of this config replaced by `<redacted>`.
    pub(crate) fn redact(&self, text: impl fmt::Display) -> String {
        self.redactor().redact(text)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("servers", &self.redacted_servers())
            .field("name", &self.name)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("connection_timeout", &self.connection_timeout)
            .field("max_reconnects", &self.max_reconnects)
            .field("reconnect_delay_max", &self.reconnect_delay_max)
            .field("retry_on_initial_connect", &self.retry_on_initial_connect)
            .field("request_timeout", &self.request_timeout)
            .field("ack_timeout", &self.ack_timeout)
            .field("confirmed_acks", &self.confirmed_acks)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("subscription_capacity", &self.subscription_capacity)
            .field("jetstream_publish", &self.jetstream_publish)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_every_secret() {
        for config in [
            Config::new("nats://alice:pa55word@host:4222"),
            Config::new("nats://host:4222").user_and_password("bob", "pa55word"),
            Config::new("nats://host:4222").token("pa55word"),
            Config::new("nats://host:4222").nkey_seed("pa55word"),
            Config::new("nats://pa55word@host:4222"),
        ] {
            let shown = format!("{config:?}");
            assert!(!shown.contains("pa55word"), "{shown}");
            assert!(shown.contains("host:4222"), "{shown}");
        }
    }

    #[test]
    fn redact_removes_url_passwords_tokens_and_seeds() {
        let config = Config::new("nats://alice:pa55@host:4222")
            .server("nats://t0k3n@other:4222")
            .nkey_seed("SUSEED");
        let text = config.redact("failed on nats://alice:pa55@host:4222 and t0k3n with SUSEED");
        assert!(!text.contains("pa55"), "{text}");
        assert!(!text.contains("t0k3n"), "{text}");
        assert!(!text.contains("SUSEED"), "{text}");
    }

    #[test]
    fn defaults_suit_a_service() {
        let config = Config::new("nats://host:4222");
        assert_eq!(config.max_reconnects, None);
        assert!(!config.retry_on_initial_connect);
        assert!(!config.jetstream_publish);
        assert_eq!(config.connection_timeout, Duration::from_secs(5));
    }
}
