//! Reading a subscription with bounded concurrency: `workers` futures share its stream,
//! each taking the next delivery once it is free; with `workers_by_key`, a dispatcher
//! feeds one lane per worker by partition key, so a key's messages stay in order.

use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::pin::{Pin, pin};
use std::task::Poll;

use futures::Stream;
use futures::lock::Mutex;
use tokio_util::sync::WaitForCancellationFuture;

use super::RuntimeBroker;
use super::invoke::sealed::Invoke;
use super::pipeline::Pipeline;
use super::settle::Slot;
use super::stop::StopSignal;
use crate::{IncomingMessage, Subscriber};

/// Why consuming a subscription stopped.
pub(crate) enum End<E> {
    /// Intake was stopped on purpose.
    Stopped,
    /// The stream ended without being asked to.
    Ended,
    /// The stream yielded an error.
    Failed(E),
}

/// Consumes `subscriber` through `pipeline` until intake stops or the stream ends.
pub(crate) async fn consume<B, Sub, I>(
    pipeline: &Pipeline<B, I>,
    subscriber: &mut Sub,
    intake: &StopSignal,
) -> End<Sub::Error>
where
    B: RuntimeBroker,
    Sub: Subscriber,
    I: Invoke<Sub>,
{
    let deliveries = pipeline.invoke.deliveries(subscriber);
    let options = &pipeline.settler.options;
    if options.by_key && options.workers > 1 {
        by_key::<B, Sub, I>(pipeline, deliveries, intake).await
    } else {
        shared::<B, Sub, I>(pipeline, deliveries, intake).await
    }
}

/// `workers` futures take turns at the stream: one waits for the next delivery (holding
/// the lock) while the others handle theirs. A single worker owns the stream.
async fn shared<B, Sub, I>(
    pipeline: &Pipeline<B, I>,
    deliveries: impl Stream<Item = Result<I::Delivery, Sub::Error>> + Send,
    intake: &StopSignal,
) -> End<Sub::Error>
where
    B: RuntimeBroker,
    Sub: Subscriber,
    I: Invoke<Sub>,
{
    let deliveries = pin!(deliveries);
    // Stops the other workers when one sees the stream end.
    let stop = intake.child();
    let workers = pipeline.settler.options.workers;
    let end = if workers <= 1 {
        let stopped = pin!(stop.cancelled());
        let alone = Alone {
            stream: deliveries,
            stop: &stop,
            stopped,
        };
        work::<B, Sub, I, _>(pipeline, alone, &stop).await
    } else {
        let stream = Mutex::new(deliveries);
        let workers = (0..workers).map(|_| async {
            let stopped = pin!(stop.cancelled());
            let shared = Shared {
                stream: &stream,
                stop: &stop,
                stopped,
            };
            work::<B, Sub, I, _>(pipeline, shared, &stop).await
        });
        let ends = futures::future::join_all(workers).await;
        ends.into_iter()
            .find(|end| !matches!(end, End::Stopped))
            .unwrap_or(End::Stopped)
    };
    if intake.is_cancelled() {
        return End::Stopped;
    }
    end
}

/// One worker: takes a delivery, takes it through the pipeline, and again, until intake
/// stops or the stream ends (which stops the other workers too).
async fn work<B, Sub, I, T>(
    pipeline: &Pipeline<B, I>,
    mut next: T,
    stop: &StopSignal,
) -> End<Sub::Error>
where
    B: RuntimeBroker,
    Sub: Subscriber,
    I: Invoke<Sub>,
    T: Take<Item = Result<I::Delivery, Sub::Error>>,
{
    let mut slot = Slot::new(pipeline.scope().format);
    loop {
        let end = match next.take().await {
            None => return End::Stopped,
            Some(Some(Ok(delivery))) => {
                pipeline.process::<Sub>(delivery, &mut slot).await;
                continue;
            }
            Some(None) => End::Ended,
            Some(Some(Err(error))) => End::Failed(error),
        };
        stop.cancel();
        return end;
    }
}

/// Where a worker takes its next delivery: `None` once stopped, `Some(None)` when the
/// stream ended.
trait Take: Send {
    type Item;

    fn take(&mut self) -> impl Future<Output = Option<Option<Self::Item>>> + Send + '_;
}

/// The only worker: the stream is its own.
struct Alone<'a, 'c, St: ?Sized> {
    stream: Pin<&'a mut St>,
    stop: &'a StopSignal,
    stopped: Pin<&'a mut WaitForCancellationFuture<'c>>,
}

impl<St: Stream + Send + ?Sized> Take for Alone<'_, '_, St>
where
    St::Item: Send,
{
    type Item = St::Item;

    fn take(&mut self) -> impl Future<Output = Option<Option<St::Item>>> + Send + '_ {
        next_or_stop(self.stream.as_mut(), self.stop, self.stopped.as_mut())
    }
}

/// One of several workers: the stream is behind an async lock.
struct Shared<'a, 's, 'c, St: ?Sized> {
    stream: &'a Mutex<Pin<&'s mut St>>,
    stop: &'a StopSignal,
    stopped: Pin<&'a mut WaitForCancellationFuture<'c>>,
}

impl<St: Stream + Send + ?Sized> Take for Shared<'_, '_, '_, St>
where
    St::Item: Send,
{
    type Item = St::Item;

    async fn take(&mut self) -> Option<Option<St::Item>> {
        let mut stream = self.stream.lock().await;
        next_or_stop(stream.as_mut(), self.stop, self.stopped.as_mut()).await
    }
}

/// A dispatcher feeds `workers` lanes; a key always maps to the same lane, so its
/// messages are handled in order. Keyless deliveries (and batches) rotate over the lanes.
async fn by_key<B, Sub, I>(
    pipeline: &Pipeline<B, I>,
    deliveries: impl Stream<Item = Result<I::Delivery, Sub::Error>> + Send,
    intake: &StopSignal,
) -> End<Sub::Error>
where
    B: RuntimeBroker,
    Sub: Subscriber,
    I: Invoke<Sub>,
{
    let lanes = pipeline.settler.options.workers;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..lanes)
        .map(|_| tokio::sync::mpsc::channel::<I::Delivery>(1))
        .unzip();
    let dispatcher = async move {
        let mut stream = pin!(deliveries);
        let mut stopped = pin!(intake.cancelled());
        let mut next_keyless = 0usize;
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        loop {
            let delivery = match next_or_stop(stream.as_mut(), intake, stopped.as_mut()).await {
                None => return End::Stopped,
                Some(None) => return End::Ended,
                Some(Some(Err(error))) => return End::Failed(error),
                Some(Some(Ok(delivery))) => delivery,
            };
            let key = match I::messages(&delivery) {
                [one] => one.partition_key(),
                _ => None,
            };
            let lane = match key {
                Some(key) => (hasher.hash_one(key) % lanes as u64) as usize,
                None => {
                    next_keyless = (next_keyless + 1) % lanes;
                    next_keyless
                }
            };
            // A lane only goes away once intake stops; the delivery is then left
            // unsettled for the broker to redeliver.
            if senders[lane].send(delivery).await.is_err() {
                return End::Stopped;
            }
        }
    };
    let lanes = receivers.into_iter().map(|mut receiver| async move {
        let mut slot = Slot::new(pipeline.scope().format);
        while let Some(delivery) = receiver.recv().await {
            if intake.is_cancelled() {
                continue; // dropped unsettled: redelivered by the broker
            }
            pipeline.process::<Sub>(delivery, &mut slot).await;
        }
    });
    let (end, _) = futures::future::join(dispatcher, futures::future::join_all(lanes)).await;
    end
}

/// The next item of `stream`, or `None` once `stop` is cancelled. `stopped` is the
/// signal's [`cancelled`](StopSignal::cancelled) future, made once per worker rather than
/// per message: a busy worker checks the stop flag and builds nothing.
fn next_or_stop<'a, St: Stream + ?Sized>(
    mut stream: Pin<&'a mut St>,
    stop: &'a StopSignal,
    mut stopped: Pin<&'a mut WaitForCancellationFuture<'_>>,
) -> impl Future<Output = Option<Option<St::Item>>> + 'a {
    poll_fn(move |cx| {
        if stop.is_cancelled() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = stream.as_mut().poll_next(cx) {
            return Poll::Ready(Some(item));
        }
        stopped.as_mut().poll(cx).map(|()| None)
    })
}
