//! The subscription stream.

use std::sync::Arc;

use futures::Stream;
use ruststream::{Capabilities, HeaderSupport, Subscriber};
use tokio::sync::mpsc;

use crate::config::Protocol;
use crate::connection::Shared;
use crate::error::MqttError;
use crate::message::MqttMessage;

/// An open MQTT subscription: a stream of [`MqttMessage`]s. Dropping it unsubscribes its
/// filter (unless another subscription of the connection uses the same filter).
pub struct MqttSubscriber {
    pub(crate) inner: Inner,
}

pub(crate) enum Inner {
    Live {
        receiver: mpsc::UnboundedReceiver<MqttMessage>,
        shared: Arc<Shared>,
        route: u64,
        capabilities: Capabilities,
    },
    #[cfg(feature = "testing")]
    InProcess(ruststream::testing::TestSubscriber),
}

impl std::fmt::Debug for MqttSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSubscriber").finish_non_exhaustive()
    }
}

impl MqttSubscriber {
    pub(crate) fn live(
        receiver: mpsc::UnboundedReceiver<MqttMessage>,
        shared: Arc<Shared>,
        route: u64,
    ) -> Self {
        let capabilities = capabilities(shared.protocol);
        Self {
            inner: Inner::Live {
                receiver,
                shared,
                route,
                capabilities,
            },
        }
    }
}

/// What a live subscription's messages can do: no requeue (MQTT has no nack), no delay,
/// no delivery count; text headers on MQTT 5 (user properties are UTF-8 strings), none
/// on 3.1.1.
pub(crate) fn capabilities(protocol: Protocol) -> Capabilities {
    let headers = match protocol {
        Protocol::V5 => HeaderSupport::Text,
        Protocol::V311 => HeaderSupport::None,
    };
    Capabilities::NONE.with_headers(headers)
}

impl Drop for MqttSubscriber {
    #[allow(irrefutable_let_patterns)] // a single variant without the `testing` feature
    fn drop(&mut self) {
        if let Inner::Live {
            shared,
            route,
            receiver,
            ..
        } = &mut self.inner
        {
            shared.unsubscribe(*route);
            // Messages queued and never handed out (see `AckHandle::abandon`).
            receiver.close();
            while let Ok(message) = receiver.try_recv() {
                message.abandon();
            }
        }
    }
}

impl Subscriber for MqttSubscriber {
    type Message = MqttMessage;
    type Error = MqttError;

    fn stream(&mut self) -> impl Stream<Item = Result<MqttMessage, MqttError>> + Send + '_ {
        // The queue ends when the connection is shut down (its routes are dropped).
        #[cfg(not(feature = "testing"))]
        {
            let Inner::Live { receiver, .. } = &mut self.inner;
            futures::stream::poll_fn(move |cx| {
                receiver.poll_recv(cx).map(|message| message.map(Ok))
            })
        }
        #[cfg(feature = "testing")]
        {
            use futures::StreamExt;
            use futures::future::Either;
            match &mut self.inner {
                Inner::Live { receiver, .. } => Either::Left(futures::stream::poll_fn(move |cx| {
                    receiver.poll_recv(cx).map(|message| message.map(Ok))
                })),
                Inner::InProcess(subscriber) => Either::Right(subscriber.stream().map(|message| {
                    Ok(MqttMessage::in_process(
                        message.unwrap_or_else(|never| match never {}),
                    ))
                })),
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        match &self.inner {
            Inner::Live { capabilities, .. } => *capabilities,
            #[cfg(feature = "testing")]
            Inner::InProcess(subscriber) => subscriber.capabilities(),
        }
    }
}
