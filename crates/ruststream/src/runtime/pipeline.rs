//! The pipeline of one subscription, built once at start: for each delivery (a message,
//! or a batch) the span and trace context, the observers, the handler under its tower
//! layers with panics caught, in-place retries, then settlement of each message.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::Either;
use tracing::Instrument as _;

use super::invoke::sealed::Invoke;
use super::message::Scope;
use super::observe::Handled;
use super::outcome::Kind;
use super::settle::{Settler, Slot};
use super::stop::StopSignal;
use super::{FailurePolicy, Message, Outcome, RuntimeBroker, spans};
use crate::{IncomingMessage, Subscriber};

/// A subscription's handler and everything its deliveries go through.
pub(crate) struct Pipeline<B, I> {
    pub(crate) invoke: I,
    pub(crate) settler: Settler<B>,
    /// Cancelled when intake stops: ends an in-place retry's wait.
    pub(crate) intake: StopSignal,
}

/// The views a handler gets of one delivery's messages: one on the stack for a message,
/// a `Vec` for a batch.
enum Views<'a> {
    One([Message<'a>; 1]),
    Many(Vec<Message<'a>>),
}

impl<'a> Views<'a> {
    fn of<M: IncomingMessage>(messages: &'a [M], scope: &'a Scope) -> Self {
        match messages {
            [one] => Views::One([Message::of(one, scope)]),
            many => Views::Many(many.iter().map(|m| Message::of(m, scope)).collect()),
        }
    }

    fn as_slice(&self) -> &[Message<'a>] {
        match self {
            Views::One(one) => one,
            Views::Many(many) => many,
        }
    }
}

impl<B: RuntimeBroker, I> Pipeline<B, I> {
    pub(crate) fn scope(&self) -> &Scope {
        &self.settler.scope
    }

    /// Takes one delivery through the pipeline, to the settlement of each of its
    /// messages, inside the delivery's span when one is wanted.
    pub(crate) fn process<'a, Sub>(
        &'a self,
        delivery: I::Delivery,
        slot: &'a mut Slot,
    ) -> impl Future<Output = ()> + Send + 'a
    where
        Sub: Subscriber + 'a,
        I: Invoke<Sub>,
    {
        // Spans are `debug`: at the usual `info` none is made, not even a disabled one.
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return Either::Left(self.handle::<Sub>(delivery, slot));
        }
        let span = spans::process(self.scope(), I::messages(&delivery));
        // Without a subscriber for it, the span is not entered at every poll.
        if span.is_disabled() {
            Either::Left(self.handle::<Sub>(delivery, slot))
        } else {
            Either::Right(self.handle::<Sub>(delivery, slot).instrument(span))
        }
    }

    /// Calls the handler (again in place, as the failure policy says) and settles each
    /// message. Observers see one delivery: received before the first call, handled with
    /// the final outcome.
    async fn handle<Sub>(&self, delivery: I::Delivery, slot: &mut Slot)
    where
        Sub: Subscriber,
        I: Invoke<Sub>,
    {
        let observers = &self.settler.observers;
        let views = Views::of(I::messages(&delivery), self.scope());
        let started = (!observers.is_empty()).then(|| {
            views
                .as_slice()
                .iter()
                .for_each(|view| observers.received(view));
            Instant::now()
        });
        let mut outcome = {
            // Made in place and polled where it is, rather than moved into a wrapper.
            let mut call = pin!(self.invoke.call(views.as_slice(), &mut slot.reply));
            poll_fn(|cx| poll_caught(call.as_mut(), cx)).await
        };
        let mut stopped = false;
        if self.wants_in_place_retry(&outcome) {
            (outcome, stopped) = self
                .retry_in_place::<Sub>(views.as_slice(), outcome, slot)
                .await;
        }
        if let Some(started) = started {
            let elapsed = started.elapsed();
            let views = views.as_slice();
            for (i, view) in views.iter().enumerate() {
                observers.handled(view, handled(element(&outcome.0, i, views.len())), elapsed);
            }
        }
        drop(views);
        if stopped {
            // Intake stopped during an in-place wait: the broker redelivers.
            I::into_messages(delivery).for_each(|m| self.settler.leave_unsettled(m));
            return;
        }
        let count = I::messages(&delivery).len();
        if let Kind::Each(each) = &outcome.0
            && each.len() != count
        {
            outcome = Outcome(Kind::count_mismatch(each.len(), count));
        }
        for (i, message) in I::into_messages(delivery).enumerate() {
            let kind = element(&outcome.0, i, count);
            self.settler.settle(message, kind, slot).await;
        }
    }

    /// Whether some message's outcome is a failure whose policy calls the handler again.
    fn wants_in_place_retry(&self, outcome: &Outcome) -> bool {
        if let Kind::Settle(_) | Kind::Reply = outcome.0 {
            return false;
        }
        let in_place = |kind: &Kind| {
            matches!(
                self.settler.policy_for(kind),
                Some(FailurePolicy::RetryInPlace { attempts, .. }) if attempts > 1
            )
        };
        match &outcome.0 {
            Kind::Each(each) => each.iter().any(|o| in_place(&o.0)),
            kind => in_place(kind),
        }
    }

    /// Calls the handler again, in this worker, on the messages whose failure policy is
    /// [`FailurePolicy::RetryInPlace`] while they have calls left; the others keep their
    /// first outcome. The last outcomes, and whether intake stopped during a wait.
    async fn retry_in_place<Sub>(
        &self,
        messages: &[Message<'_>],
        first: Outcome,
        slot: &mut Slot,
    ) -> (Outcome, bool)
    where
        Sub: Subscriber,
        I: Invoke<Sub>,
    {
        let count = messages.len();
        let mut kinds: Vec<Kind> = match first.0 {
            Kind::Each(each) if each.len() == count => each.into_iter().map(|o| o.0).collect(),
            kind if count == 1 => vec![kind],
            other => (0..count)
                .map(|i| element(&other, i, count).duplicate())
                .collect(),
        };
        let mut calls = 1;
        let mut stopped = false;
        loop {
            let mut backoff = None;
            let pending: Vec<usize> = (0..count)
                .filter(|&i| match self.settler.policy_for(&kinds[i]) {
                    Some(FailurePolicy::RetryInPlace {
                        attempts,
                        backoff: b,
                    }) if calls < attempts => {
                        backoff = Some(b);
                        true
                    }
                    _ => false,
                })
                .collect();
            let Some(backoff) = backoff else { break };
            let delay = backoff.delay(calls);
            tracing::warn!(handler = %self.scope().handler, destination = %self.scope().destination, attempt = calls, ?delay, messages = pending.len(), "the handler failed; calling it again in place");
            tokio::select! {
                biased;
                () = self.intake.cancelled() => {
                    stopped = true;
                    break;
                }
                () = tokio::time::sleep(delay) => {}
            }
            calls += 1;
            let again: Vec<Message<'_>> = pending.iter().map(|&i| messages[i]).collect();
            let outcome = {
                let mut call = pin!(self.invoke.call(&again, &mut slot.reply));
                poll_fn(|cx| poll_caught(call.as_mut(), cx)).await
            };
            for (n, &i) in pending.iter().enumerate() {
                kinds[i] = element(&outcome.0, n, pending.len()).duplicate();
            }
        }
        let last = match kinds.len() {
            1 => Outcome(kinds.pop().unwrap_or(Kind::Each(Vec::new()))),
            _ => Outcome::each(kinds.into_iter().map(Outcome).collect()),
        };
        (last, stopped)
    }
}

/// Polls a handler call, its panic caught and turned into the outcome: a panic never
/// takes the process down.
fn poll_caught(
    call: Pin<&mut impl Future<Output = Outcome>>,
    cx: &mut Context<'_>,
) -> Poll<Outcome> {
    match catch_unwind(AssertUnwindSafe(|| call.poll(cx))) {
        Ok(poll) => poll,
        Err(panic) => Poll::Ready(Outcome(Kind::Panicked(panic_reason(panic.as_ref()).into()))),
    }
}

/// The outcome of message `i` of `count`: its own in a batch's, else the whole one.
fn element(kind: &Kind, i: usize, count: usize) -> &Kind {
    match kind {
        Kind::Each(each) if each.len() == count => &each[i].0,
        _ => kind,
    }
}

/// How a call ended, as observers see it.
fn handled(kind: &Kind) -> Handled<'_> {
    match kind {
        Kind::Failed(error) => Handled::Failed(error.as_ref()),
        Kind::Rejected(rejection) => Handled::Rejected(rejection),
        Kind::Panicked(reason) => Handled::Panicked(reason),
        Kind::Each(_) => Handled::Completed,
        Kind::Settle(_) | Kind::Reply => Handled::Completed,
    }
}

pub(crate) fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-text panic payload".to_owned()
    }
}
