//! The results of a run: [`Report`], one [`CheckResult`] per check.

use std::fmt;
use std::time::Duration;

/// Why a check failed: the step it was at, what the contract expects and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The step that failed, e.g. `receive the redelivery after nack(true)`.
    pub step: String,
    /// What the contract expects at that step.
    pub expected: String,
    /// What the broker did instead.
    pub actual: String,
}

impl Failure {
    /// A failure at `step`.
    pub fn new(
        step: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Self {
            step: step.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at step `{}`: expected {}; got {}",
            self.step, self.expected, self.actual
        )
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Every step held.
    Passed {
        /// How long the check took.
        elapsed: Duration,
    },
    /// A step did not hold, the check panicked or it ran out of time.
    Failed {
        /// What went wrong.
        failure: Failure,
        /// How long the check ran.
        elapsed: Duration,
    },
    /// The check did not run.
    Skipped {
        /// Why, e.g. `not declared (Capabilities::redelivery = false)`.
        reason: String,
    },
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckResult {
    /// The check, named like a spec: `nack_without_requeue_drops`.
    pub name: &'static str,
    /// How it ended.
    pub verdict: Verdict,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Passed { elapsed } => {
                write!(f, "PASS {} ({} ms)", self.name, elapsed.as_millis())
            }
            Verdict::Failed { failure, elapsed } => write!(
                f,
                "FAIL {} ({} ms) {failure}",
                self.name,
                elapsed.as_millis()
            ),
            Verdict::Skipped { reason } => write!(f, "SKIP {}: {reason}", self.name),
        }
    }
}

/// Every check of a run, in the suite's order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The target's type name.
    pub target: &'static str,
    /// One entry per check, in the order the suite lists them.
    pub results: Vec<CheckResult>,
    /// How long the whole run took.
    pub elapsed: Duration,
}

impl Report {
    /// Whether no check failed.
    pub fn is_success(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The failed checks with their failures.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, &Failure)> + '_ {
        self.results.iter().filter_map(|r| match &r.verdict {
            Verdict::Failed { failure, .. } => Some((r.name, failure)),
            _ => None,
        })
    }

    /// The outcome of the check `name`, if the suite has it.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.results
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.verdict)
    }

    /// How many checks passed, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.results
            .iter()
            .fold((0, 0, 0), |(p, f, s), r| match r.verdict {
                Verdict::Passed { .. } => (p + 1, f, s),
                Verdict::Failed { .. } => (p, f + 1, s),
                Verdict::Skipped { .. } => (p, f, s + 1),
            })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ruststream conformance: {}", self.target)?;
        for result in &self.results {
            writeln!(f, "  {result}")?;
        }
        let (passed, failed, skipped) = self.counts();
        write!(
            f,
            "{passed} passed, {failed} failed, {skipped} skipped in {:.2} s",
            self.elapsed.as_secs_f64()
        )
    }
}
