//! [`RedisMessage`]: a delivered message and its settlement for each subscription kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ruststream::{AckError, Headers, IncomingMessage};

use crate::RedisBroker;
use crate::broker::Conn;

/// The header that carries the reply channel of a request (FastStream's name for it).
pub const REPLY_TO: &str = "reply_to";
/// The header that carries a request's correlation id (FastStream's name for it).
pub const CORRELATION_ID: &str = "correlation_id";
/// The stream entry field that holds the payload (FastStream's name for it); every
/// other field of an entry is a header.
pub const DATA_FIELD: &str = "__data__";

/// A message delivered by a [`RedisSubscriber`](crate::RedisSubscriber).
///
/// How it settles depends on its subscription's kind:
///
/// | kind | `ack` | `nack(false)` | `nack(true)` | `nack_after(d)` |
/// |---|---|---|---|---|
/// | channel, pattern | nothing to do | dropped | `AckError::Unsupported` | `AckError::Unsupported` |
/// | list | `LREM` from the consumer's in-flight list | `LREM` | moved back to the head of the list | into the list's sorted set of due messages, moved back once `d` passed |
/// | stream with a group | `XACK` | `XACK` | left pending, claimed again at once | left pending, claimed again once `d` passed |
/// | stream without a group | nothing to do | nothing to do | `AckError::Unsupported` | `AckError::Unsupported` |
#[derive(Debug)]
pub struct RedisMessage {
    pub(crate) inner: Inner,
}

#[derive(Debug)]
pub(crate) enum Inner {
    Live(Live),
    #[cfg(feature = "testing")]
    InProcess(ruststream::testing::TestMessage),
}

#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) name: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) headers: Headers,
    pub(crate) redelivery_count: Option<u32>,
    pub(crate) settle: Settle,
}

#[derive(Debug)]
pub(crate) enum Settle {
    /// Pub/Sub, or a stream read without a group: nothing to settle, nothing to requeue.
    AtMostOnce,
    /// A list element held in the consumer's in-flight list.
    List(Box<ListEntry>),
    /// A stream entry pending in a consumer group.
    Stream(Box<StreamEntry>),
}

#[derive(Debug)]
pub(crate) struct ListEntry {
    pub(crate) shared: Arc<ListShared>,
    /// The element exactly as it is in the in-flight list.
    pub(crate) raw: Bytes,
}

/// What the messages of one list subscription share.
pub(crate) struct ListShared {
    pub(crate) broker: RedisBroker,
    pub(crate) list: String,
    pub(crate) inflight: String,
    pub(crate) delayed: String,
}

impl std::fmt::Debug for ListShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListShared")
            .field("list", &self.list)
            .field("inflight", &self.inflight)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct StreamEntry {
    pub(crate) shared: Arc<StreamShared>,
    pub(crate) id: String,
}

impl Drop for StreamEntry {
    /// Settled or not, the entry is no longer in hand: unsettled, it goes idle and is
    /// claimed again after `claim_idle`.
    fn drop(&mut self) {
        self.shared.release(&self.id);
    }
}

/// What the messages of one stream subscription share.
pub(crate) struct StreamShared {
    pub(crate) broker: RedisBroker,
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) claim_idle: Duration,
    /// Set by a requeue, so the subscription claims again without waiting.
    pub(crate) requeued: AtomicBool,
    /// The ids of the entries delivered and not yet settled: the subscription keeps them
    /// from going idle (`XCLAIM .. JUSTID`), so no other consumer claims an entry that a
    /// live consumer holds, however long its handler takes.
    pub(crate) in_hand: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Entries retried with a delay longer than `claim_idle`, with when they are due: the
    /// subscription keeps them from going idle until their remaining delay fits in
    /// `claim_idle`, then sets their idle time so that they are claimed when due.
    pub(crate) delayed: std::sync::Mutex<Vec<(String, tokio::time::Instant)>>,
}

impl StreamShared {
    pub(crate) fn hold(&self, id: &str) {
        self.in_hand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned());
    }

    pub(crate) fn release(&self, id: &str) {
        self.in_hand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    pub(crate) fn holds(&self, id: &str) -> bool {
        self.in_hand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }

    /// Takes the delayed entries whose remaining delay now fits in `claim_idle`, with the
    /// idle time that makes each claimable when due; the others stay.
    pub(crate) fn due_within_claim_idle(&self) -> (Vec<String>, Vec<(String, Duration)>) {
        let now = tokio::time::Instant::now();
        let mut delayed = self
            .delayed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut waiting = Vec::new();
        let mut ready = Vec::new();
        delayed.retain(|(id, due)| {
            let remaining = due.saturating_duration_since(now);
            if remaining > self.claim_idle {
                waiting.push(id.clone());
                true
            } else {
                ready.push((id.clone(), self.claim_idle - remaining));
                false
            }
        });
        (waiting, ready)
    }

    pub(crate) fn held(&self) -> Vec<String> {
        self.in_hand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

impl std::fmt::Debug for StreamShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamShared")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

/// Moves an element from an in-flight list back to the head of its list, unless a
/// recovery already did (then it is there already).
const REQUEUE_LIST: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 0
";

/// Moves an element from an in-flight list into the sorted set of due messages, with
/// the server's clock; a unique token in front keeps equal payloads apart.
const DELAY_LIST: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3] .. ARGV[1])
end
return 0
";

/// The length of the token in front of a delayed list element.
pub(crate) const DELAY_TOKEN_LEN: usize = 16;

fn token() -> String {
    let mut token = format!("{:016x}", fastrand::u64(..));
    token.truncate(DELAY_TOKEN_LEN);
    token
}

impl RedisMessage {
    fn live(&self) -> Option<&Live> {
        match &self.inner {
            Inner::Live(live) => Some(live),
            #[cfg(feature = "testing")]
            Inner::InProcess(_) => None,
        }
    }

    /// The stream entry id, for a stream message.
    pub fn stream_id(&self) -> Option<&str> {
        match &self.live()?.settle {
            Settle::Stream(entry) => Some(&entry.id),
            _ => None,
        }
    }
}

fn ack_error(broker: &RedisBroker, error: redis::RedisError) -> AckError {
    AckError::Transport(broker.redact(error).into())
}

/// Whether a settlement that failed with `error` may be sent again: the connection broke
/// (a server restart), and every settlement command is safe to repeat (`XACK`, `LREM 1`,
/// and the scripts, which move an element only if it is still in the in-flight list).
fn worth_retrying(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
}

/// Runs a settlement, retrying it while the connection recovers, within the config's
/// `shutdown_timeout`.
async fn settle_with<F, Fut>(broker: &RedisBroker, mut attempt: F) -> Result<(), AckError>
where
    F: FnMut(Conn) -> Fut,
    Fut: std::future::Future<Output = Result<redis::Value, redis::RedisError>>,
{
    let timeout = broker.config().shutdown_timeout_value();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        let manager: Conn = broker.manager().map_err(|_| AckError::Closed)?;
        match tokio::time::timeout_at(deadline, attempt(manager)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error))
                if worth_retrying(&error) && tokio::time::Instant::now() + delay < deadline =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Ok(Err(error)) => return Err(ack_error(broker, error)),
            Err(_) => return Err(AckError::Timeout(timeout)),
        }
    }
}

async fn run(broker: &RedisBroker, cmd: redis::Cmd) -> Result<(), AckError> {
    settle_with(broker, |mut manager| {
        let cmd = cmd.clone();
        async move { cmd.query_async::<redis::Value>(&mut manager).await }
    })
    .await
}

async fn script(
    broker: &RedisBroker,
    source: &str,
    keys: &[&str],
    args: &[&[u8]],
) -> Result<(), AckError> {
    let script = redis::Script::new(source);
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    for arg in args {
        invocation.arg(*arg);
    }
    let invocation = &invocation;
    settle_with(broker, |mut manager| async move {
        invocation.invoke_async::<redis::Value>(&mut manager).await
    })
    .await
}

impl ListEntry {
    async fn remove(self) -> Result<(), AckError> {
        let shared = &self.shared;
        let mut cmd = redis::cmd("LREM");
        cmd.arg(&shared.inflight).arg(1).arg(&self.raw[..]);
        run(&shared.broker, cmd).await
    }

    async fn requeue(self) -> Result<(), AckError> {
        let shared = &self.shared;
        script(
            &shared.broker,
            REQUEUE_LIST,
            &[&shared.inflight, &shared.list],
            &[&self.raw],
        )
        .await
    }

    async fn delay(self, delay: Duration) -> Result<(), AckError> {
        let shared = &self.shared;
        let millis = delay.as_millis().to_string();
        script(
            &shared.broker,
            DELAY_LIST,
            &[&shared.inflight, &shared.delayed],
            &[&self.raw, millis.as_bytes(), token().as_bytes()],
        )
        .await
    }
}

impl StreamEntry {
    async fn ack(self) -> Result<(), AckError> {
        let shared = &self.shared;
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&shared.stream).arg(&shared.group).arg(&self.id);
        run(&shared.broker, cmd).await
    }

    /// Leaves the entry pending with an idle time that makes it claimable once `delay`
    /// has passed (`JUSTID`: the claim itself does not count as a delivery).
    async fn claim_again_after(self, delay: Duration) -> Result<(), AckError> {
        let shared = &self.shared;
        shared.release(&self.id);
        if delay > shared.claim_idle {
            // Longer than an idle entry waits: the subscription keeps it pending until
            // its remaining delay fits (see `StreamShared::delayed`).
            shared
                .delayed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((self.id.clone(), tokio::time::Instant::now() + delay));
        }
        let idle = shared.claim_idle.saturating_sub(delay);
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&shared.stream)
            .arg(&shared.group)
            .arg(&shared.consumer)
            .arg(0)
            .arg(&self.id)
            .arg("IDLE")
            .arg(idle.as_millis() as u64)
            .arg("JUSTID");
        run(&shared.broker, cmd).await?;
        if delay.is_zero() {
            shared.requeued.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl IncomingMessage for RedisMessage {
    fn payload(&self) -> &[u8] {
        match &self.inner {
            Inner::Live(live) => &live.payload,
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.payload(),
        }
    }

    fn headers(&self) -> &Headers {
        match &self.inner {
            Inner::Live(live) => &live.headers,
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.headers(),
        }
    }

    async fn ack(self) -> Result<(), AckError> {
        match self.inner {
            Inner::Live(live) => match live.settle {
                Settle::AtMostOnce => Ok(()),
                Settle::List(entry) => entry.remove().await,
                Settle::Stream(entry) => entry.ack().await,
            },
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.ack().await,
        }
    }

    fn ack_now(self) -> Result<(), Self> {
        match &self.inner {
            Inner::Live(Live {
                settle: Settle::AtMostOnce,
                ..
            }) => Ok(()),
            _ => Err(self),
        }
    }

    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        match self.inner {
            Inner::Live(live) => match (live.settle, requeue) {
                (Settle::AtMostOnce, false) => Ok(()),
                (Settle::AtMostOnce, true) => Err(AckError::Unsupported(
                    "requeue a Redis Pub/Sub message (at most once); use a list or a stream",
                )),
                (Settle::List(entry), false) => entry.remove().await,
                (Settle::List(entry), true) => entry.requeue().await,
                (Settle::Stream(entry), false) => entry.ack().await,
                (Settle::Stream(entry), true) => entry.claim_again_after(Duration::ZERO).await,
            },
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.nack(requeue).await,
        }
    }

    async fn nack_after(self, delay: Duration) -> Result<(), AckError> {
        match self.inner {
            Inner::Live(live) => match live.settle {
                Settle::AtMostOnce => Err(AckError::Unsupported(
                    "redeliver a Redis Pub/Sub message later (at most once); use a list or a stream",
                )),
                Settle::List(entry) => entry.delay(delay).await,
                Settle::Stream(entry) => entry.claim_again_after(delay).await,
            },
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.nack_after(delay).await,
        }
    }

    fn name(&self) -> Option<&str> {
        match &self.inner {
            Inner::Live(live) => Some(&live.name),
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.name(),
        }
    }

    fn reply_to(&self) -> Option<&str> {
        match &self.inner {
            Inner::Live(live) => live.headers.get_str(REPLY_TO),
            #[cfg(feature = "testing")]
            Inner::InProcess(message) => message.reply_to(),
        }
    }

    fn redelivery_count(&self) -> Option<u32> {
        self.live().and_then(|live| live.redelivery_count)
    }
}
