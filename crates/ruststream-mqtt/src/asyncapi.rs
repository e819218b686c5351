//! AsyncAPI: the server description and the MQTT bindings.

use ruststream::{DescribeServer, ServerSpec};
use serde_json::json;

use crate::broker::MqttBroker;
use crate::config::Config;
use crate::source::MqttSource;

/// The binding version of the AsyncAPI MQTT bindings this crate writes.
const BINDING_VERSION: &str = "0.2.0";

pub(crate) fn server_spec(config: &Config) -> ServerSpec {
    let protocol = if config.tls.is_configured() {
        "mqtts"
    } else {
        "mqtt"
    };
    let mut server = json!({
        "clientId": config.client_id,
        "cleanSession": config.clean_start,
        "keepAlive": config.keep_alive.as_secs(),
        "bindingVersion": BINDING_VERSION,
    });
    if !config.session_expiry.is_zero() {
        server["sessionExpiryInterval"] = json!(config.session_expiry.as_secs());
    }
    ServerSpec::new(protocol, format!("{}:{}", config.host, config.port))
        .with_protocol_version(config.protocol.as_str())
        .with_bindings(json!({ "mqtt": server }))
}

pub(crate) fn operation_bindings(source: &MqttSource) -> serde_json::Value {
    json!({ "mqtt": { "qos": source.max_qos().level(), "bindingVersion": BINDING_VERSION } })
}

impl DescribeServer for MqttBroker {
    /// Host, port, protocol version and the MQTT server binding; never the password (the
    /// user name is not included either).
    fn describe_server(&self) -> ServerSpec {
        server_spec(self.config())
    }
}
