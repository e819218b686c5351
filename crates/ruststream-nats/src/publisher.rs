//! Publishing: core NATS through [`NatsBroker`], acknowledged JetStream publishes through
//! [`JetStreamPublisher`], and the mapping of [`Headers`] onto NATS headers.
//!
//! # Headers on NATS
//!
//! NATS headers are text lines (`Name: value`). A header the protocol cannot carry
//! unchanged is refused with [`NatsError::Header`] naming it, never altered:
//!
//! - names: non-empty printable ASCII without `:` or spaces;
//! - values: UTF-8 text without CR or LF, and without leading or trailing whitespace
//!   (the client trims it on delivery).
//!
//! Several values of one name are kept, in order. The order *between* names is not: the
//! client keeps headers in a hash map.

use std::str::FromStr;

use async_nats::header::{HeaderName, HeaderValue};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use ruststream::headers::MESSAGE_ID;
use ruststream::kit::TextHeaders;
use ruststream::matching::{DotSubjects, NameMatcher};
use ruststream::{Headers, OutgoingMessage, Publisher};

use crate::broker::NatsBroker;
use crate::error::NatsError;

/// Refuses a subject NATS would not route: empty, whitespace, empty tokens, wildcards.
pub(crate) fn check_subject(subject: &str) -> Result<(), NatsError> {
    DotSubjects
        .validate_name(subject)
        .map_err(NatsError::Subject)
}

/// NATS headers are text lines, and the client trims values on delivery.
const NATS_HEADERS: TextHeaders = TextHeaders::new("NATS").trims_values(true);

/// Refuses the first header NATS cannot carry unchanged.
#[cfg(feature = "testing")]
pub(crate) fn check_headers(headers: &Headers) -> Result<(), NatsError> {
    NATS_HEADERS
        .check_all(headers)
        .map_err(|problem| NatsError::Header {
            name: problem.name,
            reason: problem.reason,
        })
}

/// The NATS form of `headers`, or an error naming the first header NATS cannot carry.
pub(crate) fn headers_to_nats(headers: &Headers) -> Result<HeaderMap, NatsError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers.iter() {
        let text = NATS_HEADERS
            .check(name, value)
            .map_err(|problem| NatsError::Header {
                name: problem.name,
                reason: problem.reason,
            })?;
        let invalid = |what: &str| NatsError::Header {
            name: name.to_owned(),
            reason: format!("the client refused the {what}"),
        };
        let header_name = HeaderName::from_str(name).map_err(|_| invalid("name"))?;
        let header_value = HeaderValue::from_str(text).map_err(|_| invalid("value"))?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

impl NatsBroker {
    /// A core publish: returns once the client has queued the message for the server
    /// (core NATS has no acknowledgement; `shutdown` flushes what is queued).
    pub(crate) async fn publish_core(&self, msg: OutgoingMessage<'_>) -> Result<(), NatsError> {
        let client = self.client()?;
        check_subject(msg.name())?;
        let subject = Subject::from(msg.name());
        let payload = Bytes::copy_from_slice(msg.payload());
        let result = match (msg.reply_to(), msg.headers().is_empty()) {
            (None, true) => client.publish(subject, payload).await,
            (None, false) => {
                let headers = headers_to_nats(msg.headers())?;
                client.publish_with_headers(subject, headers, payload).await
            }
            (Some(reply), true) => {
                check_subject(reply)?;
                client
                    .publish_with_reply(subject, Subject::from(reply), payload)
                    .await
            }
            (Some(reply), false) => {
                check_subject(reply)?;
                let headers = headers_to_nats(msg.headers())?;
                client
                    .publish_with_reply_and_headers(subject, Subject::from(reply), headers, payload)
                    .await
            }
        };
        result.map_err(|error| NatsError::Publish {
            subject: msg.name().to_owned(),
            reason: self.redact(error),
        })
    }

    /// A JetStream publish: returns once the stream has stored the message.
    pub(crate) async fn publish_jetstream(
        &self,
        msg: OutgoingMessage<'_>,
    ) -> Result<(), NatsError> {
        let context = self.jetstream()?;
        check_subject(msg.name())?;
        let mut headers = headers_to_nats(msg.headers())?;
        if let Some(id) = msg.headers().get_str(MESSAGE_ID) {
            let value = HeaderValue::from_str(id).map_err(|_| NatsError::Header {
                name: MESSAGE_ID.to_owned(),
                reason: "the client refused the value".to_owned(),
            })?;
            headers.insert(async_nats::header::NATS_MESSAGE_ID, value);
        }
        let failed = |reason: String| NatsError::Publish {
            subject: msg.name().to_owned(),
            reason,
        };
        let payload = Bytes::copy_from_slice(msg.payload());
        let ack = context
            .publish_with_headers(msg.name().to_owned(), headers, payload)
            .await
            .map_err(|error| failed(self.redact(error)))?;
        ack.await.map_err(|error| {
            let reason = match error.kind() {
                async_nats::jetstream::context::PublishErrorKind::StreamNotFound => format!(
                    "no JetStream stream captures `{}`; create one (NatsSource::stream) or publish with core NATS",
                    msg.name()
                ),
                _ => self.redact(error),
            };
            failed(reason)
        })?;
        Ok(())
    }
}

impl Publisher for NatsBroker {
    type Error = NatsError;

    /// Core NATS by default; JetStream with its acknowledgement when the config says
    /// [`jetstream_publish(true)`](crate::Config::jetstream_publish).
    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), NatsError> {
        #[cfg(feature = "testing")]
        if let Some(router) = &self.inner.in_process {
            return self.publish_in_process(router, msg).await;
        }
        if self.inner.config.jetstream_publish {
            self.publish_jetstream(msg).await
        } else {
            self.publish_core(msg).await
        }
    }
}

/// Publishes through JetStream: each publish returns once the stream has stored the
/// message (its publish acknowledgement), so a publish that returned `Ok` survives a
/// restart of the server.
///
/// A [`message-id`](ruststream::headers::MESSAGE_ID) header is also sent as
/// `Nats-Msg-Id`: the stream stores a message with an id it has seen within its
/// duplicate window only once, so a publisher that retries after a lost acknowledgement
/// does not duplicate it.
#[derive(Debug, Clone)]
pub struct JetStreamPublisher {
    broker: NatsBroker,
}

impl JetStreamPublisher {
    /// A JetStream publisher on `broker`'s connection.
    pub fn new(broker: NatsBroker) -> Self {
        Self { broker }
    }

    /// The broker it publishes through.
    pub fn broker(&self) -> &NatsBroker {
        &self.broker
    }
}

impl Publisher for JetStreamPublisher {
    type Error = NatsError;

    /// In process ([`NatsBroker::in_process`]): routed like a core publish.
    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), NatsError> {
        #[cfg(feature = "testing")]
        if let Some(router) = &self.broker.inner.in_process {
            return self.broker.publish_in_process(router, msg).await;
        }
        self.broker.publish_jetstream(msg).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_headers_map_onto_nats_headers_with_every_value() {
        let headers: Headers = [("x-id", "42"), ("x-tag", "a"), ("x-tag", "b b")]
            .into_iter()
            .collect();
        let map = headers_to_nats(&headers).unwrap();
        assert_eq!(map.get("x-id").map(HeaderValue::as_str), Some("42"));
        let tags: Vec<&str> = map.get_all("x-tag").map(HeaderValue::as_str).collect();
        assert_eq!(tags, ["a", "b b"]);
    }

    #[test]
    fn a_value_with_a_newline_is_refused_naming_the_header() {
        let headers: Headers = [("x-multi", "a\r\nb")].into_iter().collect();
        let error = headers_to_nats(&headers).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("`x-multi`"), "{text}");
        assert!(text.contains("CR or LF"), "{text}");
    }

    #[test]
    fn binary_values_names_with_colons_and_padded_values_are_refused() {
        let mut binary = Headers::new();
        binary.insert("x-bin", vec![0xff, 0x00]);
        assert!(
            headers_to_nats(&binary)
                .unwrap_err()
                .to_string()
                .contains("not UTF-8")
        );
        let colon: Headers = [("x:y", "1")].into_iter().collect();
        assert!(
            headers_to_nats(&colon)
                .unwrap_err()
                .to_string()
                .contains("`x:y`")
        );
        let padded: Headers = [("x-pad", " 1")].into_iter().collect();
        assert!(
            headers_to_nats(&padded)
                .unwrap_err()
                .to_string()
                .contains("whitespace")
        );
        let space: Headers = [("x y", "1")].into_iter().collect();
        assert!(headers_to_nats(&space).is_err());
    }

    #[test]
    fn wildcard_and_blank_subjects_are_refused_for_publish() {
        assert!(check_subject("orders.created").is_ok());
        assert!(
            check_subject("orders.*")
                .unwrap_err()
                .to_string()
                .contains("wildcards are only allowed in subscriptions")
        );
        assert!(check_subject("orders created").is_err());
        assert!(check_subject("").is_err());
    }
}
