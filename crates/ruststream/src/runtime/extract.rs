//! Extractors: each handler argument says what it needs and knows how to get it.

use std::ops::Deref;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::Message;
use crate::Headers;
use crate::codec::CodecError;

/// Gets a handler argument from a delivered message.
///
/// Implemented for:
/// - any `T: DeserializeOwned`: the payload decoded with the subscriber's format;
/// - [`Raw`]: the payload bytes, borrowed; [`Text`]: the payload as UTF-8, borrowed;
/// - `&Headers`: the headers; [`Message`]: the whole delivery;
/// - [`State<T>`]: a value of the app's shared state.
///
/// Implement it for your own types to extract anything else from a [`Message`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler argument",
    label = "not extractable from a message",
    note = "handler arguments are: a payload type implementing `serde::Deserialize`, `Raw<'_>`, `Text<'_>`, `&Headers`, `Message<'_>`, `State<T>`, `Producer<B>`, or a type implementing `FromMessage`"
)]
pub trait FromMessage<'a>: Sized {
    /// Extracts the value, or says why it cannot.
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection>;
}

/// Why a handler argument could not be extracted. The subscriber's decode-failure policy
/// decides what happens to the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The payload does not decode into the argument's type.
    #[error(transparent)]
    Decode(#[from] CodecError),
    /// A [`Text`] argument, but the payload is not UTF-8.
    #[error("the payload is not UTF-8 text: {0}")]
    NotText(#[from] std::str::Utf8Error),
    /// A [`State<T>`] argument, but the app holds no `T`.
    #[error("the app has no state of type `{0}`: add it with `App::state(..)`")]
    MissingState(&'static str),
    /// A custom extractor's reason.
    #[error("{0}")]
    Other(String),
}

impl<'a, T: DeserializeOwned> FromMessage<'a> for T {
    #[inline(always)]
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        Ok(message.decode()?)
    }
}

impl<'a> FromMessage<'a> for Message<'a> {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        Ok(*message)
    }
}

impl<'a> FromMessage<'a> for &'a Headers {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        Ok(message.headers())
    }
}

/// The payload bytes, borrowed from the delivery (no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(pub &'a [u8]);

impl Deref for Raw<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0
    }
}

impl<'a> FromMessage<'a> for Raw<'a> {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        Ok(Raw(message.payload()))
    }
}

/// The payload as UTF-8 text, borrowed from the delivery (no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text<'a>(pub &'a str);

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl<'a> FromMessage<'a> for Text<'a> {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        Ok(Text(std::str::from_utf8(message.payload())?))
    }
}

/// A value of the app's shared state, added with [`App::state`](super::App::state).
#[derive(Debug)]
pub struct State<T>(pub Arc<T>);

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State(Arc::clone(&self.0))
    }
}

impl<T> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'a, T: Send + Sync + 'static> FromMessage<'a> for State<T> {
    fn from_message(message: &Message<'a>) -> Result<Self, Rejection> {
        message
            .state::<T>()
            .map(State)
            .ok_or(Rejection::MissingState(std::any::type_name::<T>()))
    }
}
