//! The default `tracing` subscriber of a service (feature `logging`, part of `cli`).
//!
//! The runtime logs through [`tracing`]: every line about a message names its `handler`
//! and `destination`. [`init`] installs a formatter writing to standard error with the
//! level from `RUST_LOG` (default `info`); the generated `main`'s `run` command installs
//! the same. The delivery's span (`ruststream.process`, with the messaging system,
//! destination, message id and payload size) is a `debug` span of the target
//! [`SPAN_TARGET`](crate::runtime::SPAN_TARGET): `RUST_LOG=info,ruststream::message=debug`
//! prints it as the context of each line, at a cost per message.
//!
//! ```
//! // In main, before the app starts; a second call changes nothing.
//! ruststream::logging::init();
//! ruststream::logging::init();
//! ```
//!
//! Logs never carry a credential: the runtime names brokers by their messaging system,
//! never by URL.

use tracing_subscriber::EnvFilter;

/// The level filter when `RUST_LOG` is unset or does not parse.
pub const DEFAULT_FILTER: &str = "info";

/// The filter from `RUST_LOG` (`info`, `ruststream=debug,warn`...), or [`DEFAULT_FILTER`].
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// Installs the default subscriber as the global one: human-readable lines on standard
/// error, filtered by [`env_filter`]. Returns `false` (and changes nothing) when a global
/// subscriber is already installed.
pub fn init() -> bool {
    tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok()
}
