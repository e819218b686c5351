//! AsyncAPI: the server of a [`KafkaBroker`] and its Kafka bindings.

use ruststream::ServerSpec;
use ruststream::contract::DescribeServer;

use crate::broker::KafkaBroker;
use crate::config::SecurityProtocol;

impl DescribeServer for KafkaBroker {
    /// The first bootstrap server (no credentials), protocol `kafka` or `kafka-secure`
    /// (TLS), and the Kafka server binding.
    fn describe_server(&self) -> ServerSpec {
        let config = self.config();
        let first = config
            .servers
            .split(',')
            .map(str::trim)
            .find(|server| !server.is_empty())
            .unwrap_or("");
        let secure = config.tls.is_required()
            || matches!(
                config.security_protocol,
                SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
            );
        let protocol = if secure { "kafka-secure" } else { "kafka" };
        ServerSpec::from_url(Some(protocol), first)
            .with_description(format!("Kafka cluster (client id `{}`)", config.client_id))
            .with_bindings(serde_json::json!({
                "kafka": { "bindingVersion": "0.5.0" }
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Sasl};

    #[test]
    fn the_server_is_the_first_bootstrap_server_without_credentials() {
        let broker = KafkaBroker::new(
            Config::new(" k1:9092, k2:9092")
                .security_protocol(SecurityProtocol::SaslSsl)
                .sasl(Sasl::Plain {
                    username: "u".into(),
                    password: "pw-123".into(),
                }),
        );
        let spec = broker.describe_server();
        assert_eq!(spec.protocol, "kafka-secure");
        assert_eq!(spec.host, "k1:9092");
        assert!(!format!("{spec:?}").contains("pw-123"));
    }
}
