//! [`ServerSpec`]: what a broker says about its server for AsyncAPI.

/// A server as AsyncAPI describes it: protocol, host, optional path and bindings.
///
/// Build it with [`ServerSpec::new`] or [`ServerSpec::from_url`]; the latter strips any
/// user name, password or token from the URL, so credentials never reach a document.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServerSpec {
    /// The protocol (`nats`, `kafka`, `amqp`, `mqtt`, `redis`, `memory`...).
    pub protocol: String,
    /// The protocol version, if it matters (`0.9.1`, `5`...).
    pub protocol_version: Option<String>,
    /// `host[:port]`, without credentials.
    pub host: String,
    /// A path on the server (a virtual host, a database number...).
    pub pathname: Option<String>,
    /// A human description.
    pub description: Option<String>,
    /// Protocol-specific AsyncAPI server bindings, as a JSON object (feature `bindings`).
    #[cfg(feature = "bindings")]
    pub bindings: Option<serde_json::Value>,
}

impl ServerSpec {
    /// A server with a protocol and a host.
    pub fn new(protocol: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            protocol: protocol.into(),
            protocol_version: None,
            host: host.into(),
            pathname: None,
            description: None,
            #[cfg(feature = "bindings")]
            bindings: None,
        }
    }

    /// A server read from a URL such as `nats://user:secret@host:4222/path`: the scheme
    /// gives the protocol (unless `protocol` is given), the authority minus any
    /// credentials gives the host, and a non-empty path gives `pathname`.
    pub fn from_url(protocol: Option<&str>, url: &str) -> Self {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("", url),
        };
        // Credentials end at the last '@'; a password may itself hold '/', '?' or '@', so
        // the host and path are looked for only after it.
        let after_credentials = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
        let (host, path) = match after_credentials.find(['/', '?', '#']) {
            Some(at) => after_credentials.split_at(at),
            None => (after_credentials, ""),
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut spec = Self::new(protocol.unwrap_or(scheme), host);
        if !path.is_empty() && path != "/" {
            spec.pathname = Some(path.to_owned());
        }
        spec
    }

    /// Sets the protocol version.
    #[must_use]
    pub fn with_protocol_version(mut self, version: impl Into<String>) -> Self {
        self.protocol_version = Some(version.into());
        self
    }

    /// Sets the path.
    #[must_use]
    pub fn with_pathname(mut self, pathname: impl Into<String>) -> Self {
        self.pathname = Some(pathname.into());
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the protocol bindings.
    #[cfg(feature = "bindings")]
    #[must_use]
    pub fn with_bindings(mut self, bindings: serde_json::Value) -> Self {
        self.bindings = Some(bindings);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_url_strips_credentials() {
        let spec = ServerSpec::from_url(None, "nats://alice:s3cret@localhost:4222");
        assert_eq!(spec.protocol, "nats");
        assert_eq!(spec.host, "localhost:4222");
        assert_eq!(spec.pathname, None);
        assert!(!format!("{spec:?}").contains("s3cret"));
    }

    #[test]
    fn from_url_keeps_path_and_drops_query() {
        let spec = ServerSpec::from_url(Some("amqp"), "amqps://u:p@rabbit:5671/vhost?heartbeat=5");
        assert_eq!(spec.protocol, "amqp");
        assert_eq!(spec.host, "rabbit:5671");
        assert_eq!(spec.pathname.as_deref(), Some("/vhost"));
    }

    #[test]
    fn from_url_handles_at_signs_in_passwords() {
        let spec = ServerSpec::from_url(None, "redis://:p@ss@word@cache:6379/0");
        assert_eq!(spec.host, "cache:6379");
        assert_eq!(spec.pathname.as_deref(), Some("/0"));
    }

    #[test]
    fn from_url_never_leaks_a_password_with_slashes() {
        let spec = ServerSpec::from_url(None, "nats://u:pa/ss?x@host:4222");
        assert_eq!(spec.host, "host:4222");
        assert!(!format!("{spec:?}").contains("pa/ss"));
    }

    #[test]
    fn from_url_without_scheme_uses_given_protocol() {
        let spec = ServerSpec::from_url(Some("kafka"), "broker-1:9092");
        assert_eq!(spec.protocol, "kafka");
        assert_eq!(spec.host, "broker-1:9092");
    }
}
