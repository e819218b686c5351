//! The broker kit: what every broker crate would otherwise write for itself.
//!
//! Each piece is small and has one job; a broker crate takes the ones it needs.
//!
//! | item | what it is for |
//! |---|---|
//! | [`Secret`], [`redact_url`], [`url_secret`], [`Redactor`] | credentials that never show in `Debug`, errors, logs or AsyncAPI |
//! | [`Tls`] | the TLS settings a `Config` embeds: required, roots, client certificate |
//! | [`Shutdown`], [`ShutdownWatch`] | the signal `shutdown` sets once; a per-message check of one atomic load, awaitable when idle |
//! | [`Batcher`] | cancel-safe batch gathering for `BatchSubscriber` |
//! | [`TextHeaders`], [`HeaderProblem`] | the check of headers for text-only header protocols |
//! | [`Backoff`] | growing delays with jitter, for retries and reconnects |
//! | `live` | live-server test support: find or skip a server, fresh names, clean-up, a private server process (feature `live-tests`) |
//!
//! The kit depends only on what the contract does (tokio, futures, bytes, thiserror,
//! tracing, parking_lot, fastrand), so a broker crate pulls in nothing new with it.

mod backoff;
mod batch;
mod headers;
mod secret;
mod shutdown;
mod tls;

#[cfg(feature = "live-tests")]
pub mod live;

pub use backoff::Backoff;
pub use batch::Batcher;
pub use headers::{HeaderProblem, TextHeaders};
pub use secret::{REDACTED, Redactor, Secret, redact_url, url_secret};
pub use shutdown::{Shutdown, ShutdownWatch};
pub use tls::Tls;
