//! AsyncAPI: the server ([`DescribeServer`]) and the AMQP bindings of a queue.
//!
//! The AsyncAPI AMQP bindings (`bindingVersion` 0.3.0) define no server binding (the
//! object is reserved and empty), and an operation binding whose `ack` says that a
//! receiver acknowledges, and `cc` the routing keys it is bound with.

use ruststream::{DescribeServer, ServerSpec};
use serde_json::json;

use crate::broker::RabbitBroker;
use crate::source::RabbitQueue;

/// The version of the AsyncAPI AMQP bindings written here.
pub const BINDING_VERSION: &str = "0.3.0";

impl DescribeServer for RabbitBroker {
    /// `amqp` 0.9.1 at the URL's host and port, the virtual host as the path; never the
    /// credentials.
    fn describe_server(&self) -> ServerSpec {
        let config = self.config();
        let url = config.redacted_url();
        let mut spec = ServerSpec::from_url(Some("amqp"), &url)
            .with_protocol_version("0.9.1")
            .with_pathname(config.virtual_host())
            .with_bindings(json!({ "amqp": {} }));
        if url.starts_with("amqps://") {
            spec.protocol = "amqps".to_owned();
        }
        spec
    }
}

/// The operation binding of a subscription to `queue`.
pub(crate) fn queue_binding(queue: &RabbitQueue) -> serde_json::Value {
    let keys: Vec<&str> = queue
        .bindings()
        .iter()
        .filter_map(|binding| binding.routing_key())
        .collect();
    let mut binding = json!({ "ack": true, "bindingVersion": BINDING_VERSION });
    if !keys.is_empty() {
        binding["cc"] = json!(keys);
    }
    json!({ "amqp": binding })
}

#[cfg(test)]
mod tests {
    use ruststream::SubscriptionSource;

    use super::*;
    use crate::{Config, RabbitExchange};

    #[test]
    fn the_server_has_no_credentials_and_names_the_vhost() {
        let broker = RabbitBroker::new(Config::new("amqp://app:s3cret@rabbit:5672/%2fshop"));
        let spec = broker.describe_server();
        assert_eq!(spec.protocol, "amqp");
        assert_eq!(spec.protocol_version.as_deref(), Some("0.9.1"));
        assert_eq!(spec.host, "rabbit:5672");
        assert_eq!(spec.pathname.as_deref(), Some("/shop"));
        assert!(!format!("{spec:?}").contains("s3cret"));
    }

    #[test]
    fn a_queue_binding_says_ack_and_its_routing_keys() {
        let queue = RabbitQueue::new("billing").bind(RabbitExchange::topic("orders"), "orders.#");
        let bindings = queue.operation_bindings().unwrap();
        assert_eq!(bindings["amqp"]["ack"], true);
        assert_eq!(bindings["amqp"]["cc"][0], "orders.#");
    }
}
