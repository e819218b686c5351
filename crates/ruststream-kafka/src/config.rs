//! [`Config`]: where the cluster is, how to authenticate, and how the crate's clients
//! behave.

use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;
use ruststream::kit::{Redactor, Secret, Tls};

/// How the client talks to the brokers (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// No TLS, no authentication (the default).
    #[default]
    Plaintext,
    /// TLS, no SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
}

/// A SASL mechanism with its credentials.
#[derive(Clone)]
#[non_exhaustive]
pub enum Sasl {
    /// `PLAIN`: user name and password.
    Plain {
        /// The user name.
        username: String,
        /// The password, never printed.
        password: Secret,
    },
    /// `SCRAM-SHA-256`.
    ScramSha256 {
        /// The user name.
        username: String,
        /// The password, never printed.
        password: Secret,
    },
    /// `SCRAM-SHA-512`.
    ScramSha512 {
        /// The user name.
        username: String,
        /// The password, never printed.
        password: Secret,
    },
}

impl Sasl {
    fn parts(&self) -> (&'static str, &str, &Secret) {
        match self {
            Self::Plain { username, password } => ("PLAIN", username, password),
            Self::ScramSha256 { username, password } => ("SCRAM-SHA-256", username, password),
            Self::ScramSha512 { username, password } => ("SCRAM-SHA-512", username, password),
        }
    }
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mechanism, username, password) = self.parts();
        f.debug_struct("Sasl")
            .field("mechanism", &mechanism)
            .field("username", &username)
            .field("password", password)
            .finish()
    }
}

/// Compression of produced batches (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// None (the default).
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
}

impl Compression {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
        }
    }
}

/// How topics the crate needs are created when they are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDefaults {
    /// Partitions of a created topic.
    pub partitions: i32,
    /// Replication factor of a created topic.
    pub replication: i32,
}

/// The Kafka broker's configuration. `Config::new` takes the bootstrap servers, which
/// have no sane default; everything else is a builder method with a documented default.
///
/// ```
/// use std::time::Duration;
/// use ruststream_kafka::{Config, Sasl, SecurityProtocol};
///
/// let config = Config::new("kafka-1:9092,kafka-2:9092")
///     .client_id("billing")
///     .group_id("billing")
///     .security_protocol(SecurityProtocol::SaslSsl)
///     .sasl(Sasl::ScramSha512 { username: "billing".into(), password: "s3cret".into() })
///     .commit_interval(Duration::from_secs(1))
///     .property("linger.ms", "5");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) servers: String,
    pub(crate) client_id: String,
    pub(crate) group_id: Option<String>,
    pub(crate) security_protocol: SecurityProtocol,
    pub(crate) sasl: Option<Sasl>,
    pub(crate) tls: Tls,
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) secret_properties: Vec<(String, Secret)>,
    pub(crate) compression: Compression,
    pub(crate) session_timeout: Duration,
    pub(crate) commit_interval: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) join_timeout: Duration,
    pub(crate) prefetch: usize,
    pub(crate) create_topics: Option<TopicDefaults>,
}

impl Config {
    /// A config for the cluster at `bootstrap_servers` (`host:port`, comma-separated).
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            servers: bootstrap_servers.into(),
            client_id: "ruststream".to_owned(),
            group_id: None,
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: Tls::default(),
            properties: Vec::new(),
            secret_properties: Vec::new(),
            compression: Compression::None,
            session_timeout: Duration::from_secs(45),
            commit_interval: Duration::from_secs(5),
            delivery_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(30),
            prefetch: 256,
            create_topics: Some(TopicDefaults {
                partitions: 1,
                replication: 1,
            }),
        }
    }

    /// `client.id` (default `ruststream`).
    #[must_use]
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// The consumer group of subscriptions by name (`#[subscriber("orders")]`) and of
    /// descriptors without `.group(..)`. No default: Kafka commits per group.
    #[must_use]
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// `security.protocol` (default plaintext).
    #[must_use]
    pub fn security_protocol(mut self, protocol: SecurityProtocol) -> Self {
        self.security_protocol = protocol;
        self
    }

    /// SASL mechanism and credentials. Set the security protocol to `SaslPlaintext` or
    /// `SaslSsl` too.
    #[must_use]
    pub fn sasl(mut self, sasl: Sasl) -> Self {
        self.sasl = Some(sasl);
        self
    }

    /// TLS: root certificates and a client certificate (`ssl.ca.location`,
    /// `ssl.certificate.location`, `ssl.key.location`). A required TLS turns a plaintext
    /// protocol into `ssl` and a SASL one into `sasl_ssl`.
    #[must_use]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Any librdkafka property, passed through to every client (producer, consumers,
    /// admin). Set after the crate's own, so it wins.
    #[must_use]
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// A librdkafka property whose value is a secret (`ssl.key.password`,
    /// `sasl.oauthbearer.client.secret`): passed through like [`property`](Self::property),
    /// never printed.
    #[must_use]
    pub fn secret_property(mut self, key: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.secret_properties.push((key.into(), value.into()));
        self
    }

    /// Compression of produced batches (default none).
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// `session.timeout.ms` of consumers (default 45 s, Kafka's).
    #[must_use]
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How often settled offsets are committed (default 5 s). They are committed on a
    /// rebalance and when the subscription ends too.
    #[must_use]
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// How long a publish waits for the cluster's delivery report (default 30 s,
    /// `message.timeout.ms`).
    #[must_use]
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// The bound on metadata requests, topic creation and transaction steps
    /// (default 10 s).
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The bound on `shutdown`'s flush of queued publishes (default 10 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long `subscribe` waits for the group to hand the new member its partitions
    /// (default 30 s); past it, the subscription starts anyway and takes them when the
    /// group assigns them.
    #[must_use]
    pub fn join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// How many received messages a subscription holds before handlers take them
    /// (default 256).
    #[must_use]
    pub fn prefetch(mut self, messages: usize) -> Self {
        self.prefetch = messages.max(1);
        self
    }

    /// Create missing topics the crate needs (subscribed, published to, retry topics)
    /// with this many partitions and this replication factor (default 1 and 1).
    #[must_use]
    pub fn create_topics(mut self, partitions: i32, replication: i32) -> Self {
        self.create_topics = Some(TopicDefaults {
            partitions: partitions.max(1),
            replication: replication.max(1),
        });
        self
    }

    /// Never create topics: they must exist (the cluster's `auto.create.topics.enable`
    /// still applies).
    #[must_use]
    pub fn no_topic_creation(mut self) -> Self {
        self.create_topics = None;
        self
    }

    /// The bootstrap servers.
    pub fn bootstrap_servers(&self) -> &str {
        &self.servers
    }

    /// `text` with every secret of this config replaced by `<redacted>`.
    pub fn redact(&self, text: impl fmt::Display) -> String {
        self.redactor().redact(text)
    }

    pub(crate) fn redactor(&self) -> Redactor {
        let mut redactor = Redactor::new();
        if let Some(sasl) = &self.sasl {
            redactor.add(sasl.parts().2.expose());
        }
        for (_, secret) in &self.secret_properties {
            redactor.add(secret.expose());
        }
        redactor
    }

    fn effective_protocol(&self) -> SecurityProtocol {
        if !self.tls.is_required() {
            return self.security_protocol;
        }
        match self.security_protocol {
            SecurityProtocol::Plaintext => SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext => SecurityProtocol::SaslSsl,
            other => other,
        }
    }

    /// The librdkafka settings every client of this config shares.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.servers)
            .set("client.id", &self.client_id)
            .set("security.protocol", self.effective_protocol().as_str());
        if let Some(sasl) = &self.sasl {
            let (mechanism, username, password) = sasl.parts();
            config
                .set("sasl.mechanism", mechanism)
                .set("sasl.username", username)
                .set("sasl.password", password.expose());
        }
        if let Some(root) = self.tls.roots().first() {
            config.set("ssl.ca.location", root.to_string_lossy());
        }
        if let Some((cert, key)) = self.tls.client() {
            config
                .set("ssl.certificate.location", cert.to_string_lossy())
                .set("ssl.key.location", key.to_string_lossy());
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        for (key, value) in &self.secret_properties {
            config.set(key, value.expose());
        }
        config
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret_keys: Vec<&str> = self
            .secret_properties
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        f.debug_struct("Config")
            .field("bootstrap_servers", &self.redact(&self.servers))
            .field("client_id", &self.client_id)
            .field("group_id", &self.group_id)
            .field("security_protocol", &self.effective_protocol())
            .field("sasl", &self.sasl)
            .field("tls", &self.tls)
            .field("properties", &self.properties)
            .field("secret_properties", &secret_keys)
            .field("compression", &self.compression)
            .field("session_timeout", &self.session_timeout)
            .field("commit_interval", &self.commit_interval)
            .field("create_topics", &self.create_topics)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_or_redacted_text() {
        let config = Config::new("k:9092")
            .sasl(Sasl::Plain {
                username: "u".into(),
                password: "hunter2".into(),
            })
            .secret_property("ssl.key.password", "keypass");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("keypass"),
            "{shown}"
        );
        assert_eq!(
            config.redact("auth failed for hunter2 and keypass"),
            "auth failed for <redacted> and <redacted>"
        );
    }

    #[test]
    fn required_tls_upgrades_the_protocol() {
        let config = Config::new("k:9092")
            .security_protocol(SecurityProtocol::SaslPlaintext)
            .tls(Tls::default().required(true));
        assert_eq!(config.effective_protocol(), SecurityProtocol::SaslSsl);
        let client = config.client_config();
        assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
    }

    #[test]
    fn passed_through_properties_win() {
        let client = Config::new("k:9092")
            .property("client.id", "mine")
            .client_config();
        assert_eq!(client.get("client.id"), Some("mine"));
    }
}
