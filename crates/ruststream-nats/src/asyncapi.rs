//! AsyncAPI: the server ([`DescribeServer`]) and the NATS bindings.
//!
//! The NATS bindings of AsyncAPI (`bindingVersion` 0.1.0) define an operation binding,
//! `queue` (the queue group); the server binding object is empty. The server's host is
//! the first configured URL without its credentials.

use ruststream::{DescribeServer, ServerSpec};
use serde_json::json;

use crate::broker::NatsBroker;
use crate::source::NatsSource;

/// The version of the AsyncAPI NATS bindings written here.
pub const BINDING_VERSION: &str = "0.1.0";

impl DescribeServer for NatsBroker {
    fn describe_server(&self) -> ServerSpec {
        let config = self.config();
        let url = config
            .redacted_servers()
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut spec = ServerSpec::from_url(Some("nats"), &url);
        if config.tls.is_required() || url.starts_with("tls://") {
            spec.description = Some("NATS over TLS".to_owned());
        } else {
            spec.description = Some("NATS".to_owned());
        }
        spec.with_bindings(json!({ "nats": {} }))
    }
}

/// The AsyncAPI operation bindings of a source: `{"nats": {"queue": .., "bindingVersion": ..}}`
/// for a queue group, `None` otherwise.
pub(crate) fn operation_bindings(source: &NatsSource) -> Option<serde_json::Value> {
    let queue = source.queue_group_name()?;
    Some(json!({ "nats": { "queue": queue, "bindingVersion": BINDING_VERSION } }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn the_server_description_has_no_credentials() {
        let broker =
            NatsBroker::new(Config::new("nats://alice:pa55word@nats.internal:4222").token("t0ken"));
        let spec = broker.describe_server();
        assert_eq!(spec.protocol, "nats");
        assert_eq!(spec.host, "nats.internal:4222");
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("pa55word") && !shown.contains("t0ken") && !shown.contains("alice"),
            "{shown}"
        );
    }

    #[test]
    fn a_queue_group_is_an_operation_binding() {
        let bindings = NatsSource::new("orders")
            .queue_group("workers")
            .operation_bindings();
        assert_eq!(bindings.unwrap()["nats"]["queue"], "workers");
        assert!(NatsSource::new("orders").operation_bindings().is_none());
    }
}
