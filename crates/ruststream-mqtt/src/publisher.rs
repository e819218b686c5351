//! Publishing: QoS, retain and MQTT 5 properties per message.
//!
//! Three headers are read by the publisher and never sent as headers, on both protocol
//! versions:
//!
//! | header | value | default |
//! |---|---|---|
//! | `mqtt-qos` | `0`, `1` or `2` | the config's [`publish_qos`](crate::Config::publish_qos) (QoS 1) |
//! | `mqtt-retain` | `true` or `false` | `false` |
//! | `mqtt-message-expiry` | seconds (MQTT 5 message expiry interval) | none |
//!
//! On MQTT 5, `content-type` becomes the content type property, `correlation-id` the
//! correlation data (both are also sent as user properties when they are text, so they
//! keep their place among the headers), the reply-to the response topic, and every other
//! header a user property (UTF-8 text, order and repeats kept). On MQTT 3.1.1 any other header is an
//! error: the protocol has no headers.

use bytes::Bytes;
use ruststream::matching::NameMatcher;
use ruststream::{OutgoingMessage, Publisher};

use crate::broker::MqttBroker;
use crate::config::Protocol;
use crate::connection::{CONTENT_TYPE, CORRELATION_ID, PublishOptions};
use crate::error::MqttError;
use crate::source::Qos;
use crate::topic::MqttTopics;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

/// The header that sets a publish's QoS (`0`, `1` or `2`).
pub const QOS_HEADER: &str = "mqtt-qos";
/// The header that sets a publish's retain flag (`true` or `false`).
pub const RETAIN_HEADER: &str = "mqtt-retain";
/// The header that sets an MQTT 5 message expiry interval, in seconds.
pub const EXPIRY_HEADER: &str = "mqtt-message-expiry";

fn header_error(name: &str, why: impl std::fmt::Display) -> MqttError {
    MqttError::Header(format!("header `{name}`: {why}"))
}

/// Maps an outgoing message onto MQTT publish options for `protocol`.
pub(crate) fn options(
    msg: &OutgoingMessage<'_>,
    protocol: Protocol,
    default_qos: Qos,
) -> Result<PublishOptions, MqttError> {
    MqttTopics
        .validate_name(msg.name())
        .map_err(MqttError::Topic)?;
    let mut options = PublishOptions {
        qos: default_qos,
        retain: false,
        properties: None,
    };
    let mut properties = PublishProperties::default();
    let mut any = false;
    for (name, value) in msg.headers().iter() {
        let text = || {
            std::str::from_utf8(value)
                .ok()
                .filter(|text| !text.contains('\0'))
                .ok_or_else(|| header_error(name, "MQTT 5 user properties are UTF-8 text without NUL; send binary data in the payload"))
        };
        match name {
            QOS_HEADER => {
                options.qos = text()?
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .and_then(Qos::from_level)
                    .ok_or_else(|| header_error(name, "must be 0, 1 or 2"))?;
            }
            RETAIN_HEADER => {
                options.retain = text()?
                    .trim()
                    .parse::<bool>()
                    .map_err(|_| header_error(name, "must be `true` or `false`"))?;
            }
            _ if protocol == Protocol::V311 => {
                return Err(header_error(
                    name,
                    "MQTT 3.1.1 carries no headers; use `Protocol::V5` or put the value in the payload",
                ));
            }
            EXPIRY_HEADER => {
                properties.message_expiry_interval = Some(
                    text()?
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| header_error(name, "must be a number of seconds"))?,
                );
                any = true;
            }
            CONTENT_TYPE => {
                let content_type = text()?.to_owned();
                properties.content_type = Some(content_type.clone());
                properties
                    .user_properties
                    .push((name.to_owned(), content_type));
                any = true;
            }
            CORRELATION_ID => {
                properties.correlation_data = Some(Bytes::copy_from_slice(value));
                // Kept among the user properties too when it is text, so it keeps its
                // place in the headers.
                if let Ok(text) = std::str::from_utf8(value)
                    && !text.contains('\0')
                {
                    properties
                        .user_properties
                        .push((name.to_owned(), text.to_owned()));
                }
                any = true;
            }
            _ => {
                properties
                    .user_properties
                    .push((name.to_owned(), text()?.to_owned()));
                any = true;
            }
        }
    }
    if let Some(reply_to) = msg.reply_to() {
        if protocol == Protocol::V311 {
            return Err(MqttError::Header(
                "a reply-to needs MQTT 5 (response topic); MQTT 3.1.1 cannot carry it".to_owned(),
            ));
        }
        MqttTopics
            .validate_name(reply_to)
            .map_err(MqttError::Topic)?;
        properties.response_topic = Some(reply_to.to_owned());
        any = true;
    }
    if any {
        options.properties = Some(properties);
    }
    Ok(options)
}

impl Publisher for MqttBroker {
    type Error = MqttError;

    /// Publishes; at QoS 1 returns once the server sent PUBACK, at QoS 2 once PUBCOMP, at
    /// QoS 0 once the client queued it.
    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), MqttError> {
        self.publish_message(msg).await
    }
}
