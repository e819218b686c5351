//! Publishing to channels, lists and streams: [`RedisPublisher`], `Publisher for
//! RedisBroker` (channels), [`RedisTransaction`] (`MULTI`/`EXEC`) and request-reply.

use std::time::Duration;

use futures::StreamExt as _;
use ruststream::{
    OutgoingMessage, Publisher, Reply, RequestReply, Transaction, TransactionalPublisher,
};

use crate::message::{CORRELATION_ID, DATA_FIELD, REPLY_TO};
use crate::{RedisBroker, RedisError, envelope};

/// Names starting with this are reply channels of requests: a publish to one is always a
/// Pub/Sub `PUBLISH`, whatever the publisher's kind, so a responder on a list or a stream
/// answers with its usual publisher.
pub const REPLY_PREFIX: &str = "ruststream.reply.";

/// Where a [`RedisPublisher`] publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// `PUBLISH` to a channel.
    Channel,
    /// `RPUSH` to a list (consumed from the head: first in, first out).
    List,
    /// `XADD` to a stream.
    Stream,
}

/// A publisher to one kind of destination, on a [`RedisBroker`]'s connection:
/// `broker.channels()`, `broker.lists()`, `broker.streams().maxlen(10_000)`.
#[derive(Debug, Clone)]
pub struct RedisPublisher {
    broker: RedisBroker,
    destination: Destination,
    maxlen: Option<(usize, bool)>,
}

impl RedisBroker {
    /// A publisher to Pub/Sub channels (what `Publisher for RedisBroker` does too).
    pub fn channels(&self) -> RedisPublisher {
        self.publisher(Destination::Channel)
    }

    /// A publisher to lists.
    pub fn lists(&self) -> RedisPublisher {
        self.publisher(Destination::List)
    }

    /// A publisher to streams.
    pub fn streams(&self) -> RedisPublisher {
        self.publisher(Destination::Stream)
    }

    /// A publisher to `destination`.
    pub fn publisher(&self, destination: Destination) -> RedisPublisher {
        RedisPublisher {
            broker: self.clone(),
            destination,
            maxlen: None,
        }
    }
}

impl RedisPublisher {
    /// Trims each stream to about `maxlen` entries on every `XADD`
    /// (`MAXLEN ~ maxlen`: Redis trims whole nodes, which is much cheaper).
    #[must_use]
    pub fn maxlen(mut self, maxlen: usize) -> Self {
        self.maxlen = Some((maxlen, true));
        self
    }

    /// Trims each stream to exactly `maxlen` entries on every `XADD` (`MAXLEN = maxlen`).
    #[must_use]
    pub fn maxlen_exact(mut self, maxlen: usize) -> Self {
        self.maxlen = Some((maxlen, false));
        self
    }

    /// Where it publishes.
    pub fn destination(&self) -> Destination {
        self.destination
    }

    /// The command that publishes `msg`.
    fn command(&self, msg: &OutgoingMessage<'_>) -> Result<redis::Cmd, RedisError> {
        let name = msg.name();
        if name.is_empty() {
            return Err(RedisError::Publish {
                name: String::new(),
                reason: "the name is empty; give a channel, list or stream name".into(),
            });
        }
        let destination = if name.starts_with(REPLY_PREFIX) {
            Destination::Channel
        } else {
            self.destination
        };
        let mut extra: Vec<(&str, &[u8])> = Vec::new();
        if let Some(reply_to) = msg.reply_to()
            && !msg.headers().contains(REPLY_TO)
        {
            extra.push((REPLY_TO, reply_to.as_bytes()));
        }
        let cmd = match destination {
            Destination::Channel | Destination::List => {
                let value = envelope::encode(msg.payload(), &extra, msg.headers())?;
                let mut cmd = redis::cmd(if destination == Destination::Channel {
                    "PUBLISH"
                } else {
                    "RPUSH"
                });
                cmd.arg(name).arg(value);
                cmd
            }
            Destination::Stream => {
                let mut cmd = redis::cmd("XADD");
                cmd.arg(name);
                if let Some((maxlen, approximate)) = self.maxlen {
                    cmd.arg("MAXLEN")
                        .arg(if approximate { "~" } else { "=" })
                        .arg(maxlen);
                }
                cmd.arg("*").arg(DATA_FIELD).arg(msg.payload());
                for (header, value) in extra.iter().copied().chain(msg.headers().iter()) {
                    if header == DATA_FIELD {
                        return Err(RedisError::Header {
                            name: header.to_owned(),
                            reason: format!(
                                "`{DATA_FIELD}` is the stream field of the payload; rename the header"
                            ),
                        });
                    }
                    cmd.arg(header).arg(value);
                }
                cmd
            }
        };
        Ok(cmd)
    }

    fn publish_error(&self, name: &str, error: impl std::fmt::Display) -> RedisError {
        RedisError::Publish {
            name: name.to_owned(),
            reason: self.broker.redact(error),
        }
    }

    async fn send(&self, msg: OutgoingMessage<'_>) -> Result<(), RedisError> {
        #[cfg(feature = "testing")]
        if let Some(client) = self.broker.test_client() {
            return crate::testing::publish(client, msg).await;
        }
        let cmd = self.command(&msg)?;
        let mut manager = self.broker.manager()?;
        cmd.query_async::<redis::Value>(&mut manager)
            .await
            .map(drop)
            .map_err(|error| self.publish_error(msg.name(), error))
    }

    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, RedisError> {
        #[cfg(feature = "testing")]
        if let Some(client) = self.broker.test_client() {
            return crate::testing::request(client, msg, timeout).await;
        }
        let name = msg.name();
        let request_error = |reason: String| RedisError::Request {
            name: name.to_owned(),
            reason,
        };
        let correlation_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let reply_to = format!("{REPLY_PREFIX}{correlation_id}");
        // Listen before asking, so the answer cannot come first.
        let mut pubsub = self.broker.pubsub().await?;
        pubsub
            .subscribe(&reply_to)
            .await
            .map_err(|error| request_error(self.broker.redact(error)))?;
        let mut headers = msg.headers().clone();
        if !headers.contains(CORRELATION_ID) {
            headers.insert(CORRELATION_ID, correlation_id.clone());
        }
        self.send(
            OutgoingMessage::new(name, msg.payload())
                .with_headers(&headers)
                .with_reply_to(&reply_to),
        )
        .await?;
        let mut replies = pubsub.on_message();
        let reply = tokio::select! {
            () = self.broker.inner.shutdown.triggered() => return Err(RedisError::Closed),
            reply = tokio::time::timeout(timeout, replies.next()) => reply,
        };
        match reply {
            Ok(Some(message)) => {
                let (payload, headers) =
                    envelope::decode(bytes::Bytes::copy_from_slice(message.get_payload_bytes()));
                Ok(Reply { payload, headers })
            }
            Ok(None) => Err(request_error("the reply connection closed".into())),
            Err(_) => Err(request_error(format!(
                "no reply within {timeout:?}; is a subscriber answering on `{name}`?"
            ))),
        }
    }
}

impl Publisher for RedisPublisher {
    type Error = RedisError;

    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), RedisError> {
        self.send(msg).await
    }
}

impl Publisher for RedisBroker {
    type Error = RedisError;

    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), RedisError> {
        self.channels().send(msg).await
    }
}

impl RequestReply for RedisPublisher {
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, RedisError> {
        RedisPublisher::request(self, msg, timeout).await
    }
}

impl RequestReply for RedisBroker {
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, RedisError> {
        self.channels().request(msg, timeout).await
    }
}

/// Publishes queued in a `MULTI`/`EXEC` block: nothing is visible before
/// [`commit`](Transaction::commit), everything at once after it; `abort` or a drop
/// sends nothing.
#[derive(Debug)]
pub struct RedisTransaction {
    publisher: RedisPublisher,
    pipeline: redis::Pipeline,
    #[cfg(feature = "testing")]
    in_process: Vec<(String, bytes::Bytes, ruststream::Headers)>,
}

impl TransactionalPublisher for RedisPublisher {
    type Transaction = RedisTransaction;

    async fn begin(&self) -> Result<RedisTransaction, RedisError> {
        #[cfg(feature = "testing")]
        if self.broker.test_client().is_none() {
            self.broker.manager()?;
        }
        #[cfg(not(feature = "testing"))]
        self.broker.manager()?;
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        Ok(RedisTransaction {
            publisher: self.clone(),
            pipeline,
            #[cfg(feature = "testing")]
            in_process: Vec::new(),
        })
    }
}

impl TransactionalPublisher for RedisBroker {
    type Transaction = RedisTransaction;

    async fn begin(&self) -> Result<RedisTransaction, RedisError> {
        self.channels().begin().await
    }
}

impl Transaction for RedisTransaction {
    type Error = RedisError;

    async fn publish(&mut self, msg: OutgoingMessage<'_>) -> Result<(), RedisError> {
        #[cfg(feature = "testing")]
        if self.publisher.broker.test_client().is_some() {
            self.in_process.push((
                msg.name().to_owned(),
                bytes::Bytes::copy_from_slice(msg.payload()),
                msg.headers().clone(),
            ));
            return Ok(());
        }
        let cmd = self.publisher.command(&msg)?;
        self.pipeline.add_command(cmd);
        Ok(())
    }

    async fn commit(self) -> Result<(), RedisError> {
        #[cfg(feature = "testing")]
        if self.publisher.broker.test_client().is_some() {
            for (name, payload, headers) in &self.in_process {
                self.publisher
                    .send(OutgoingMessage::new(name, payload).with_headers(headers))
                    .await?;
            }
            return Ok(());
        }
        let mut manager = self.publisher.broker.manager()?;
        self.pipeline
            .query_async::<redis::Value>(&mut manager)
            .await
            .map(drop)
            .map_err(|error| RedisError::Transaction(self.publisher.broker.redact(error)))
    }

    async fn abort(self) -> Result<(), RedisError> {
        Ok(())
    }
}
