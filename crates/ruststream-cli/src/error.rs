//! [`CliError`]: why a command failed, said so that the reader knows what to do.

use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The tokio runtime could not be built.
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A file (or standard input, `-`) could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// What was read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        /// What was written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `ruststream new` was asked for something it cannot do.
    #[error("{0}")]
    Scaffold(String),
    /// The URL names no broker this tool speaks, or is not a URL.
    #[error("{0}")]
    Url(String),
    /// The broker could not be reached.
    #[error("cannot connect to the {broker} broker at {address}: {reason}")]
    Connect {
        /// The broker's name (`NATS`).
        broker: &'static str,
        /// Its address, credentials removed.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// A publish, request or subscription failed once connected.
    #[error("{action} on the {broker} broker at {address} failed: {reason}")]
    Broker {
        /// What was being done (`publish to orders`).
        action: String,
        /// The broker's name.
        broker: &'static str,
        /// Its address, credentials removed.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// An AsyncAPI document could not be read or is not valid.
    #[error("{0}")]
    AsyncApi(String),
    /// The page server could not listen or serve.
    #[error("cannot serve on {addr}: {source}")]
    Serve {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}
