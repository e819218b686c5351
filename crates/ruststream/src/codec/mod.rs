//! Codecs: how payloads become typed values and back.
//!
//! A codec is a [`Codec`] (its content type) plus [`Encode`] / [`Decode`] for the types it
//! handles. The serde codecs ([`Json`], and `MsgPack` and `Cbor` behind their features)
//! handle every `Serialize` / `DeserializeOwned` type; a custom codec (protobuf, say)
//! implements the same traits for its own bound.
//!
//! The content type travels in the [`headers::CONTENT_TYPE`](crate::headers::CONTENT_TYPE) header:
//! publishers set it with [`Codec::content_type`], and [`check_content_type`] refuses a
//! payload labelled with another type before decoding it.
//!
//! ```
//! # #[cfg(feature = "json")] {
//! use ruststream::codec::{Decode, Encode, Json};
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Order { id: u64 }
//!
//! let mut body = Vec::new();
//! Json.encode(&Order { id: 7 }, &mut body).unwrap();
//! let back: Order = Json.decode(&body).unwrap();
//! assert_eq!(back, Order { id: 7 });
//!
//! let err = Decode::<Order>::decode(&Json, b"{\"id\":").unwrap_err();
//! assert!(err.to_string().contains("Order"));
//! # }
//! ```

#[cfg(feature = "cbor")]
mod cbor;
mod error;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "msgpack")]
mod msgpack;

#[cfg(feature = "cbor")]
pub use cbor::Cbor;
/// The type-erased serde traits a [`CustomCodec`](crate::runtime::CustomCodec) works
/// with, re-exported so a codec crate needs no version of its own.
#[cfg(feature = "runtime")]
pub use erased_serde;
pub use error::CodecError;
#[cfg(feature = "json")]
pub use json::Json;
#[cfg(feature = "msgpack")]
pub use msgpack::MsgPack;

use crate::Headers;
use crate::headers::CONTENT_TYPE;

/// A payload format, named by its content type.
pub trait Codec: Send + Sync + 'static {
    /// The MIME type written to the `content-type` header (`application/json`...).
    fn content_type(&self) -> &'static str;
}

/// Turns a `T` into bytes.
pub trait Encode<T: ?Sized>: Codec {
    /// Appends the encoding of `value` to `out`.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Turns bytes into a `T`.
pub trait Decode<T>: Codec {
    /// Decodes `bytes`. Never panics: bad input is a [`CodecError::Decode`] carrying the
    /// reason.
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// Refuses a payload whose `content-type` header names another format than `codec`.
///
/// A missing header is accepted (the codec is trusted); parameters such as
/// `; charset=utf-8` and letter case are ignored.
pub fn check_content_type<C: Codec + ?Sized>(
    codec: &C,
    headers: &Headers,
) -> Result<(), CodecError> {
    let Some(found) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let expected = codec.content_type();
    let essence = found
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if essence.eq_ignore_ascii_case(expected.as_bytes()) {
        Ok(())
    } else {
        Err(CodecError::ContentType {
            expected,
            found: String::from_utf8_lossy(found).into_owned(),
        })
    }
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;

    #[test]
    fn content_type_check_ignores_parameters_and_case() {
        let mut headers = Headers::new();
        assert!(check_content_type(&Json, &headers).is_ok());
        headers.insert(CONTENT_TYPE, "Application/JSON; charset=utf-8");
        assert!(check_content_type(&Json, &headers).is_ok());
        headers.insert(CONTENT_TYPE, "application/msgpack");
        let err = check_content_type(&Json, &headers).unwrap_err();
        assert!(matches!(err, CodecError::ContentType { .. }));
        assert!(err.to_string().contains("application/msgpack"));
    }

    #[test]
    fn non_utf8_content_type_is_a_clear_error() {
        let mut headers = Headers::new();
        headers.insert(CONTENT_TYPE, vec![0xff, 0xfe]);
        assert!(check_content_type(&Json, &headers).is_err());
    }
}
