//! The delivered message and its settlement.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ruststream::{AckError, Headers, IncomingMessage};

use crate::connection::AckHandle;

/// What `nack(true)` and `nack_after` answer: MQTT cannot ask the server to redeliver.
const NO_REQUEUE: &str = "MQTT has no negative acknowledgement: the message was left unacknowledged, so a persistent session gets it again after a reconnect; nothing is redelivered on this connection";

/// A message delivered by an MQTT subscription.
///
/// Settlement (see the crate docs' table): `ack` sends the PUBACK (QoS 1) or PUBREC
/// (QoS 2) once every subscription of this connection it was routed to settled it;
/// `nack(false)` acknowledges it too (the message is dropped); `nack(true)` and
/// `nack_after` leave it unacknowledged and answer [`AckError::Unsupported`]. A QoS 0
/// message needs no acknowledgement.
pub struct MqttMessage {
    inner: Inner,
}

enum Inner {
    Live {
        topic: Arc<str>,
        payload: Bytes,
        headers: Headers,
        reply_to: Option<String>,
        ack: Option<Arc<AckHandle>>,
    },
    #[cfg(feature = "testing")]
    InProcess(ruststream::testing::TestMessage),
}

impl std::fmt::Debug for MqttMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttMessage")
            .field("topic", &IncomingMessage::name(self))
            .field("payload_len", &self.payload().len())
            .finish_non_exhaustive()
    }
}

impl MqttMessage {
    pub(crate) fn live(
        topic: Arc<str>,
        payload: Bytes,
        headers: Headers,
        reply_to: Option<String>,
        ack: Option<Arc<AckHandle>>,
    ) -> Self {
        Self {
            inner: Inner::Live {
                topic,
                payload,
                headers,
                reply_to,
                ack,
            },
        }
    }

    #[cfg(feature = "testing")]
    pub(crate) fn in_process(message: ruststream::testing::TestMessage) -> Self {
        Self {
            inner: Inner::InProcess(message),
        }
    }

    /// Gives the message up unsettled because its subscription is gone.
    pub(crate) fn abandon(self) {
        if let Inner::Live { ack: Some(ack), .. } = self.inner {
            ack.abandon();
        }
    }

    /// The topic the message was published to.
    pub fn topic(&self) -> &str {
        IncomingMessage::name(self).unwrap_or_default()
    }

    async fn acknowledge(self) -> Result<(), AckError> {
        match self.inner {
            Inner::Live { ack: Some(ack), .. } => ack
                .release()
                .await
                .map_err(|reason| AckError::Transport(reason.into())),
            Inner::Live { ack: None, .. } => Ok(()),
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.ack().await,
        }
    }
}

impl IncomingMessage for MqttMessage {
    fn payload(&self) -> &[u8] {
        match &self.inner {
            Inner::Live { payload, .. } => payload,
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.payload(),
        }
    }

    fn headers(&self) -> &Headers {
        match &self.inner {
            Inner::Live { headers, .. } => headers,
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.headers(),
        }
    }

    async fn ack(self) -> Result<(), AckError> {
        self.acknowledge().await
    }

    /// Acknowledges without a future when the client's request queue has room (the
    /// PUBACK or PUBREC is queued to the connection's task), else gives the message back
    /// for `ack`.
    fn ack_now(self) -> Result<(), Self> {
        match &self.inner {
            Inner::Live { ack: None, .. } => Ok(()),
            Inner::Live { ack: Some(ack), .. } if ack.try_release() => Ok(()),
            _ => Err(self),
        }
    }

    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        match self.inner {
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.nack(requeue).await,
            _ if requeue => Err(AckError::Unsupported(NO_REQUEUE)),
            _ => self.acknowledge().await,
        }
    }

    async fn nack_after(self, delay: Duration) -> Result<(), AckError> {
        match self.inner {
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.nack_after(delay).await,
            _ => {
                let _ = delay;
                Err(AckError::Unsupported(NO_REQUEUE))
            }
        }
    }

    fn name(&self) -> Option<&str> {
        match &self.inner {
            Inner::Live { topic, .. } => Some(topic),
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.name(),
        }
    }

    fn reply_to(&self) -> Option<&str> {
        match &self.inner {
            Inner::Live { reply_to, .. } => reply_to.as_deref(),
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.reply_to(),
        }
    }
}
