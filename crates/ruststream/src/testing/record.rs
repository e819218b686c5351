//! What a [`TestApp`](super::TestApp) records: [`Received`], [`Ended`] and [`Published`].

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::Headers;
use crate::headers::MESSAGE_ID;
use crate::runtime::{Format, Handled, Settlement};

/// How a handler call ended: the owned form of the runtime's [`Handled`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// It returned normally (its outcome may still have asked for a retry).
    Completed,
    /// It returned an error; the error's text.
    Failed(String),
    /// An argument could not be extracted (the payload did not decode, a state was
    /// missing...); the rejection's text.
    Rejected(String),
    /// It panicked; the panic's text.
    Panicked(String),
}

impl Ended {
    /// The text of the error, rejection or panic; `None` when the handler completed.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Ended::Completed => None,
            Ended::Failed(reason) | Ended::Rejected(reason) | Ended::Panicked(reason) => {
                Some(reason)
            }
        }
    }
}

impl From<Handled<'_>> for Ended {
    fn from(handled: Handled<'_>) -> Self {
        match handled {
            Handled::Completed => Ended::Completed,
            Handled::Failed(error) => Ended::Failed(error.to_string()),
            Handled::Rejected(rejection) => Ended::Rejected(rejection.to_string()),
            Handled::Panicked(panic) => Ended::Panicked(panic.to_owned()),
        }
    }
}

/// One delivery of a message to a handler, as the handler saw it, with how the call ended
/// and how the runtime settled it (once it has).
///
/// A retried message is received again: each attempt is its own record.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Received {
    /// The handler it was delivered to.
    pub handler: String,
    /// The concrete name it was published to, when the broker says.
    pub name: Option<String>,
    /// The body, as published.
    pub payload: Bytes,
    /// The headers, as published.
    pub headers: Headers,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// Deliveries before this one, when the broker counts them.
    pub redelivery_count: Option<u32>,
    /// How the handler call ended; `None` while it runs.
    pub ended: Option<Ended>,
    /// How the runtime settled the message; `None` until it does (or if it never does:
    /// a handler cancelled at the shutdown timeout leaves its message unsettled).
    pub settlement: Option<Settlement>,
    pub(crate) format: Format,
}

impl Received {
    /// The payload decoded as `T` with the subscriber's format.
    ///
    /// # Panics
    ///
    /// If it does not decode, with the handler and the payload in the message: this is a
    /// test helper.
    #[track_caller]
    pub fn decoded<T: DeserializeOwned>(&self) -> T {
        match self.format.decode(&self.payload) {
            Ok(value) => value,
            Err(error) => panic!(
                "the message handler `{}` received does not decode as `{}`: {error} (payload {:?})",
                self.handler,
                std::any::type_name::<T>(),
                String::from_utf8_lossy(&self.payload),
            ),
        }
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_str(name)
    }

    /// The `message-id` header (set by [`TestApp`](super::TestApp) on each publish).
    pub fn message_id(&self) -> Option<&str> {
        self.headers.get_str(MESSAGE_ID)
    }
}

/// A publish by the app: a handler's reply, a dead letter, or a
/// [`Producer`](crate::runtime::Producer) publish from a handler.
///
/// The test's own publishes through [`TestApp`](super::TestApp) are not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Where it was published.
    pub destination: String,
    /// The body.
    pub payload: Bytes,
    /// The broker's error, if the publish failed.
    pub error: Option<String>,
    pub(crate) format: Format,
}

impl Published {
    /// Whether the broker took it.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// The payload decoded as `T` with the test app's format (JSON unless
    /// [`TestApp::with_format`](super::TestApp::with_format) says otherwise).
    ///
    /// # Panics
    ///
    /// If it does not decode, with the destination and the payload in the message: this
    /// is a test helper.
    #[track_caller]
    pub fn decoded<T: DeserializeOwned>(&self) -> T {
        match self.format.decode(&self.payload) {
            Ok(value) => value,
            Err(error) => panic!(
                "the message published to `{}` does not decode as `{}`: {error} (payload {:?})",
                self.destination,
                std::any::type_name::<T>(),
                String::from_utf8_lossy(&self.payload),
            ),
        }
    }
}
