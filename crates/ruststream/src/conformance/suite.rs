//! [`Suite`]: which checks run, how, and the report.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::task::JoinError;
use tokio::time::Instant;

use super::checks::{capability, delivery, lifecycle, settlement};
use super::harness::{Connections, Ctx, Steps, panic_text};
use super::report::{CheckResult, Failure, Report, Verdict};
use super::target::{Capabilities, ConformanceTarget, SubscriberOf};
use crate::{
    BatchSubscriber, Broker, DescribeServer, Partitioned, RequestReply, TransactionalPublisher,
};

/// The environment variable that restricts a run to some checks: comma-separated parts
/// of check names (`RUSTSTREAM_CONFORMANCE_ONLY=nack,shutdown`).
pub const ONLY_ENV: &str = "RUSTSTREAM_CONFORMANCE_ONLY";

type CheckFn<T> = Box<dyn Fn(Ctx<T>) -> BoxFuture<'static, Result<(), Failure>> + Send + Sync>;
/// Whether a check runs, by the target's promises and its subscriptions' own statement.
type Gate = fn(&Capabilities, &Stated) -> Result<(), String>;

/// What a subscription of the target says its messages can do.
type Stated = crate::Capabilities;

struct Check<T: ConformanceTarget> {
    name: &'static str,
    gate: Gate,
    /// The check, or the builder method that adds it.
    run: Result<CheckFn<T>, &'static str>,
    /// Runs alone, after every other check (it disturbs the whole server).
    exclusive: bool,
}

fn boxed<T, F, Fut>(check: F) -> CheckFn<T>
where
    T: ConformanceTarget,
    F: Fn(Ctx<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Failure>> + Send + 'static,
{
    Box::new(move |ctx| Box::pin(check(ctx)))
}

fn always(_: &Capabilities, _: &Stated) -> Result<(), String> {
    Ok(())
}

/// Runs a check of something the subscription states (`Subscriber::capabilities`).
fn stated(flag: bool, name: &str) -> Result<(), String> {
    if flag {
        Ok(())
    } else {
        Err(format!(
            "not stated (the subscriber's capabilities().{name} = false)"
        ))
    }
}

fn declared(flag: bool, name: &str) -> Result<(), String> {
    if flag {
        Ok(())
    } else {
        Err(format!("not declared (Capabilities::{name} = false)"))
    }
}

/// The conformance suite for one [`ConformanceTarget`].
///
/// [`Suite::new`] holds the core checks; each `with_*` method adds the suite of one
/// capability trait and compiles only when the target's types implement it. Checks of
/// behaviours the target does not declare in its [`Capabilities`] are skipped and
/// reported as such, as are capability suites not added.
#[must_use = "a suite does nothing until `run().await`"]
pub struct Suite<T: ConformanceTarget> {
    target: Arc<T>,
    checks: Vec<Check<T>>,
    concurrency: usize,
    only: Option<String>,
}

impl<T: ConformanceTarget> std::fmt::Debug for Suite<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("target", &std::any::type_name::<T>())
            .field("checks", &self.checks())
            .field("concurrency", &self.concurrency)
            .field("only", &self.only)
            .finish()
    }
}

impl<T: ConformanceTarget> Suite<T> {
    /// The core checks for `target`, running 4 at a time.
    pub fn new(target: T) -> Self {
        let mut suite = Self {
            target: Arc::new(target),
            checks: Vec::new(),
            concurrency: 4,
            only: None,
        };
        suite.core();
        suite.placeholders();
        suite
    }

    fn add(&mut self, name: &'static str, gate: Gate, run: CheckFn<T>) {
        self.checks.push(Check {
            name,
            gate,
            run: Ok(run),
            exclusive: false,
        });
    }

    fn core(&mut self) {
        use delivery as d;
        use lifecycle as l;
        use settlement as s;
        let headers = |_: &Capabilities, s: &Stated| {
            if s.headers == super::HeaderSupport::None {
                Err("not stated (the subscriber's capabilities().headers = None)".to_owned())
            } else {
                Ok(())
            }
        };
        self.add(
            "round_trip_keeps_payload",
            always,
            boxed(d::round_trip_keeps_payload::<T>),
        );
        self.add(
            "round_trip_keeps_binary_payload",
            always,
            boxed(d::round_trip_keeps_binary_payload::<T>),
        );
        self.add(
            "round_trip_keeps_empty_payload",
            always,
            boxed(d::round_trip_keeps_empty_payload::<T>),
        );
        self.add(
            "round_trip_keeps_large_payload",
            |c, _| {
                if c.max_payload == 0 {
                    Err("not declared (Capabilities::max_payload = 0)".to_owned())
                } else {
                    Ok(())
                }
            },
            boxed(d::round_trip_keeps_large_payload::<T>),
        );
        self.add(
            "round_trip_keeps_headers",
            headers,
            boxed(d::round_trip_keeps_headers::<T>),
        );
        self.add(
            "round_trip_keeps_header_order",
            |c, _| declared(c.header_order, "header_order"),
            boxed(d::round_trip_keeps_header_order::<T>),
        );
        self.add(
            "round_trip_keeps_binary_header_values",
            |_, s| {
                if s.headers == super::HeaderSupport::Binary {
                    Ok(())
                } else {
                    Err(format!(
                        "not stated (the subscriber's capabilities().headers = {:?})",
                        s.headers
                    ))
                }
            },
            boxed(d::round_trip_keeps_binary_header_values::<T>),
        );
        self.add(
            "round_trip_keeps_duplicate_header_names",
            |c, _| declared(c.duplicate_headers, "duplicate_headers"),
            boxed(d::round_trip_keeps_duplicate_header_names::<T>),
        );
        self.add(
            "ordering_is_kept_per_name",
            |c, _| declared(c.ordering, "ordering"),
            boxed(d::ordering_is_kept_per_name::<T>),
        );
        self.add(
            "names_are_isolated",
            always,
            boxed(d::names_are_isolated::<T>),
        );
        self.add("ack_consumes", always, boxed(s::ack_consumes::<T>));
        self.add("ack_now_consumes", always, boxed(s::ack_now_consumes::<T>));
        self.add(
            "nack_requeue_redelivers",
            |_, s| stated(s.requeue, "requeue"),
            boxed(s::nack_requeue_redelivers::<T>),
        );
        self.add(
            "nack_without_requeue_drops",
            always,
            boxed(s::nack_without_requeue_drops::<T>),
        );
        self.add(
            "nack_after_honours_its_delay",
            |_, s| stated(s.delayed_requeue, "delayed_requeue"),
            boxed(s::nack_after_honours_its_delay::<T>),
        );
        self.add(
            "out_of_order_settlement_redelivers_only_the_nacked",
            |_, s| stated(s.requeue, "requeue"),
            boxed(s::out_of_order_settlement_redelivers_only_the_nacked::<T>),
        );
        self.add(
            "unsettled_message_of_a_dropped_subscriber_comes_back",
            |c, s| {
                stated(s.requeue, "requeue")?;
                if c.named_subscriptions() {
                    Ok(())
                } else {
                    Err("needs a group to come back to, and neither \
                         Capabilities::competing_consumers nor Capabilities::durable is declared"
                        .to_owned())
                }
            },
            boxed(s::unsettled_message_of_a_dropped_subscriber_comes_back::<T>),
        );
        self.add(
            "competing_consumers_share",
            |c, _| declared(c.competing_consumers, "competing_consumers"),
            boxed(d::competing_consumers_share::<T>),
        );
        self.add(
            "fan_out_subscribers_each_receive_every_message",
            |c, _| declared(c.fan_out, "fan_out"),
            boxed(d::fan_out_subscribers_each_receive_every_message::<T>),
        );
        self.add(
            "concurrent_publishers_lose_nothing",
            always,
            boxed(d::concurrent_publishers_lose_nothing::<T>),
        );
        self.add(
            "shutdown_is_bounded_and_ends_streams",
            always,
            boxed(l::shutdown_is_bounded_and_ends_streams::<T>),
        );
        self.add(
            "publish_after_shutdown_errors",
            always,
            boxed(l::publish_after_shutdown_errors::<T>),
        );
        self.add(
            "resumed_subscriber_loses_nothing",
            |c, _| declared(c.durable, "durable"),
            boxed(l::resumed_subscriber_loses_nothing::<T>),
        );
        self.checks.push(Check {
            name: "server_restart_loses_nothing",
            gate: |c, _| declared(c.server_restart, "server_restart"),
            run: Ok(boxed(l::server_restart_loses_nothing::<T>)),
            exclusive: true,
        });
    }

    /// The capability checks, skipped until their suite is added.
    fn placeholders(&mut self) {
        const ABSENT: &[(&str, &str)] = &[
            (
                "batches_are_never_empty_and_at_most_max",
                "Suite::with_batches",
            ),
            ("batch_elements_settle_alone", "Suite::with_batches"),
            (
                "transaction_commit_makes_all_visible",
                "Suite::with_transactions",
            ),
            (
                "transaction_abort_makes_none_visible",
                "Suite::with_transactions",
            ),
            (
                "transaction_drop_makes_none_visible",
                "Suite::with_transactions",
            ),
            (
                "request_is_answered_by_a_responder",
                "Suite::with_request_reply",
            ),
            (
                "unanswered_request_errors_within_timeout",
                "Suite::with_request_reply",
            ),
            ("partition_key_is_delivered", "Suite::with_partitioning"),
            ("order_is_kept_per_key", "Suite::with_partitioning"),
            (
                "server_description_has_no_credentials",
                "Suite::with_describe_server",
            ),
        ];
        for &(name, method) in ABSENT {
            self.checks.push(Check {
                name,
                gate: always,
                run: Err(method),
                exclusive: false,
            });
        }
    }

    fn provide(&mut self, name: &'static str, gate: Gate, run: CheckFn<T>) {
        if let Some(check) = self.checks.iter_mut().find(|c| c.name == name) {
            check.gate = gate;
            check.run = Ok(run);
        }
    }

    /// Adds the [`BatchSubscriber`] suite: batches are never empty and hold at most the
    /// maximum, every message arrives, and each element of a batch settles alone.
    pub fn with_batches(mut self) -> Self
    where
        SubscriberOf<T>: BatchSubscriber,
    {
        self.provide(
            "batches_are_never_empty_and_at_most_max",
            always,
            boxed(capability::batches_are_never_empty_and_at_most_max::<T>),
        );
        self.provide(
            "batch_elements_settle_alone",
            |_, s| stated(s.requeue, "requeue"),
            boxed(capability::batch_elements_settle_alone::<T>),
        );
        self
    }

    /// Adds the [`TransactionalPublisher`] suite: a commit makes every publish of the
    /// transaction visible, an abort or a drop none.
    pub fn with_transactions(mut self) -> Self
    where
        T::Publisher: TransactionalPublisher,
    {
        self.provide(
            "transaction_commit_makes_all_visible",
            always,
            boxed(capability::transaction_commit_makes_all_visible::<T>),
        );
        self.provide(
            "transaction_abort_makes_none_visible",
            always,
            boxed(capability::transaction_abort_makes_none_visible::<T>),
        );
        self.provide(
            "transaction_drop_makes_none_visible",
            always,
            boxed(capability::transaction_drop_makes_none_visible::<T>),
        );
        self
    }

    /// Adds the [`RequestReply`] suite: a responder replying to `reply_to()` answers a
    /// request with payload and headers; a request nobody answers fails within its
    /// timeout.
    pub fn with_request_reply(mut self) -> Self
    where
        T::Publisher: RequestReply,
    {
        self.provide(
            "request_is_answered_by_a_responder",
            always,
            boxed(capability::request_is_answered_by_a_responder::<T>),
        );
        self.provide(
            "unanswered_request_errors_within_timeout",
            always,
            boxed(capability::unanswered_request_errors_within_timeout::<T>),
        );
        self
    }

    /// Adds the [`Partitioned`] suite: `partition_key()` returns the published key and
    /// each key's messages keep their order.
    pub fn with_partitioning(mut self) -> Self
    where
        T::Publisher: Partitioned,
    {
        self.provide(
            "partition_key_is_delivered",
            always,
            boxed(capability::partition_key_is_delivered::<T>),
        );
        self.provide(
            "order_is_kept_per_key",
            always,
            boxed(capability::order_is_kept_per_key::<T>),
        );
        self
    }

    /// Adds the [`DescribeServer`] suite: the broker's `ServerSpec` has a protocol and a
    /// host, and neither it nor its bindings contain any of
    /// [`credentials()`](ConformanceTarget::credentials).
    pub fn with_describe_server(mut self) -> Self
    where
        T::Broker: DescribeServer,
    {
        self.provide(
            "server_description_has_no_credentials",
            always,
            boxed(capability::server_description_has_no_credentials::<T>),
        );
        self
    }

    /// Runs at most `checks` checks at a time (default 4; at least 1).
    pub fn concurrency(mut self, checks: usize) -> Self {
        self.concurrency = checks.max(1);
        self
    }

    /// Runs only the checks whose names contain one of the comma-separated `parts`; the
    /// others are reported as skipped. The [`ONLY_ENV`] environment variable does the
    /// same without a code change (both apply when both are set).
    pub fn only(mut self, parts: impl Into<String>) -> Self {
        self.only = Some(parts.into());
        self
    }

    /// Every check's name, in report order.
    pub fn checks(&self) -> Vec<&'static str> {
        self.checks.iter().map(|c| c.name).collect()
    }

    /// Runs the suite, prints the report to stderr and panics listing every failed check
    /// with its step, what was expected and what happened.
    pub async fn run(self) {
        let report = self.run_report().await;
        eprintln!("{report}");
        if !report.is_success() {
            let failures: Vec<String> = report
                .failures()
                .map(|(name, failure)| format!("  {name}: {failure}"))
                .collect();
            panic!(
                "{} conformance check(s) failed for {}:\n{}",
                failures.len(),
                report.target,
                failures.join("\n")
            );
        }
    }

    /// Runs the suite and returns the report without printing or panicking.
    pub async fn run_report(self) -> Report {
        let started = Instant::now();
        let caps = self.target.capabilities();
        let stated = match stated_capabilities(self.target.as_ref(), &caps).await {
            Ok(stated) => stated,
            Err(failure) => {
                return Report {
                    target: std::any::type_name::<T>(),
                    results: self
                        .checks
                        .iter()
                        .map(|check| CheckResult {
                            name: check.name,
                            verdict: Verdict::Failed {
                                failure: failure.clone(),
                                elapsed: started.elapsed(),
                            },
                        })
                        .collect(),
                    elapsed: started.elapsed(),
                };
            }
        };
        let env_only = std::env::var(ONLY_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let mut outcomes: Vec<Option<Verdict>> = Vec::new();
        let mut names = Vec::new();
        let mut concurrent = Vec::new();
        let mut exclusive = Vec::new();
        for (index, check) in self.checks.into_iter().enumerate() {
            names.push(check.name);
            let filtered = [(&self.only, "Suite::only"), (&env_only, ONLY_ENV)]
                .into_iter()
                .find_map(|(only, source)| match only {
                    Some(parts) if !selected(check.name, parts) => {
                        Some(format!("filtered out ({source} = {parts:?})"))
                    }
                    _ => None,
                });
            let gated = || match &check.run {
                Ok(_) => (check.gate)(&caps, &stated).err(),
                Err(_) => None,
            };
            let run = match (filtered.or_else(gated), check.run) {
                (None, Ok(run)) => run,
                (Some(reason), _) => {
                    outcomes.push(Some(Verdict::Skipped { reason }));
                    continue;
                }
                (None, Err(method)) => {
                    let reason = format!(
                        "capability suite not added (call {method}() if the broker implements the trait)"
                    );
                    outcomes.push(Some(Verdict::Skipped { reason }));
                    continue;
                }
            };
            outcomes.push(None);
            let job = (index, check.name, run);
            if check.exclusive {
                exclusive.push(job);
            } else {
                concurrent.push(job);
            }
        }

        let target = &self.target;
        let caps_ref = &caps;
        let finished: Vec<(usize, Verdict)> = futures::stream::iter(concurrent)
            .map(|(index, name, run)| async move {
                (
                    index,
                    run_one(Arc::clone(target), caps_ref.clone(), stated, name, run).await,
                )
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (index, outcome) in finished {
            outcomes[index] = Some(outcome);
        }
        for (index, name, run) in exclusive {
            outcomes[index] =
                Some(run_one(Arc::clone(target), caps.clone(), stated, name, run).await);
        }

        Report {
            target: std::any::type_name::<T>(),
            results: names
                .into_iter()
                .zip(outcomes)
                .map(|(name, outcome)| CheckResult {
                    name,
                    verdict: outcome.unwrap_or(Verdict::Skipped {
                        reason: "did not run".to_owned(),
                    }),
                })
                .collect(),
            elapsed: started.elapsed(),
        }
    }
}

/// What the target's subscriptions state, read from one opened for the purpose (in the
/// mode single-subscriber checks use), then closed.
async fn stated_capabilities<T: ConformanceTarget>(
    target: &T,
    caps: &Capabilities,
) -> Result<Stated, Failure> {
    let steps = Steps::new(target.credentials());
    let broker = target.broker().await;
    steps.set("connect, to read the subscriptions' capabilities");
    tokio::time::timeout(caps.receive_timeout, broker.connect())
        .await
        .map_err(|_| steps.fail("connect() to return", "it did not return"))?
        .map_err(|error| steps.fail("connect() to succeed", error))?;
    steps.set("subscribe, to read the subscriptions' capabilities");
    let name = target.fresh_name("capabilities");
    let mode = if caps.named_subscriptions() {
        super::Mode::Group(
            name.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect(),
        )
    } else {
        super::Mode::FanOut
    };
    let opened = tokio::time::timeout(
        caps.receive_timeout,
        crate::SubscriptionSource::subscribe(target.source(&name, mode), &broker),
    )
    .await;
    let stated = match opened {
        Ok(Ok(subscriber)) => Ok(crate::Subscriber::capabilities(&subscriber)),
        Ok(Err(error)) => Err(steps.fail("subscribe() to succeed", error)),
        Err(_) => Err(steps.fail("subscribe() to return", "it did not return")),
    };
    let _ = tokio::time::timeout(caps.shutdown_timeout, broker.shutdown()).await;
    stated
}

fn selected(name: &str, parts: &str) -> bool {
    parts
        .split(',')
        .map(str::trim)
        .any(|part| !part.is_empty() && name.contains(part))
}

/// Runs one check in its own task, bounded by the check timeout, then shuts down every
/// connection it opened.
async fn run_one<T: ConformanceTarget>(
    target: Arc<T>,
    caps: Capabilities,
    stated: Stated,
    name: &'static str,
    run: CheckFn<T>,
) -> Verdict {
    let steps = Steps::new(target.credentials());
    let connections: Connections<T::Broker> = Arc::new(Mutex::new(Vec::new()));
    let ctx = Ctx {
        target,
        caps: caps.clone(),
        stated,
        check: name,
        steps: steps.clone(),
        connections: Arc::clone(&connections),
    };
    let started = Instant::now();
    let mut task = tokio::spawn(run(ctx));
    let mut result = match tokio::time::timeout(caps.check_timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(steps.fail("no panic", panic_message(join))),
        Err(_) => {
            task.abort();
            drop(task.await);
            Err(steps.fail(
                format!(
                    "the check to finish within {:?} (Capabilities::check_timeout)",
                    caps.check_timeout
                ),
                "it was still running at this step",
            ))
        }
    };
    let elapsed = started.elapsed();

    let brokers = std::mem::take(&mut *connections.lock().unwrap_or_else(PoisonError::into_inner));
    let count = brokers.len();
    let bound = caps.shutdown_timeout;
    let cleanup = tokio::spawn(async move {
        for broker in brokers {
            if tokio::time::timeout(bound, broker.shutdown())
                .await
                .is_err()
            {
                return Err(bound);
            }
        }
        Ok(())
    });
    let cleaned = cleanup.await;
    if result.is_ok() {
        let step = format!("clean-up: shutdown() of the check's {count} connection(s)");
        result = match cleaned {
            Ok(Ok(())) => Ok(()),
            Ok(Err(bound)) => Err(steps.fail_at(
                step,
                format!("shutdown() to return within {bound:?}"),
                "it did not return",
            )),
            Err(join) => Err(steps.fail_at(step, "no panic", panic_message(join))),
        };
    }
    match result {
        Ok(()) => Verdict::Passed { elapsed },
        Err(failure) => Verdict::Failed { failure, elapsed },
    }
}

fn panic_message(join: JoinError) -> String {
    if join.is_panic() {
        panic_text(join.into_panic())
    } else {
        "the check's task was cancelled".to_owned()
    }
}
