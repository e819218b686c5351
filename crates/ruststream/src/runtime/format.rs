//! [`Format`]: the serde codec a subscriber, router or app decodes and encodes with.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::CodecError;

/// Which serde codec a subscriber uses for payloads and replies.
///
/// Chosen per subscriber, router or app (the nearest wins; JSON when none is set). The
/// choice is a value, so one handler type can run with any format, and decoding stays
/// monomorphic: no dynamic dispatch per message. A format whose cargo feature is off
/// fails each decode with an error naming the feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Format {
    /// JSON (feature `json`, on by default).
    #[default]
    Json,
    /// MessagePack (feature `msgpack`).
    MsgPack,
    /// CBOR (feature `cbor`).
    Cbor,
}

impl Format {
    /// The content type written to the `content-type` header.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::MsgPack => "application/msgpack",
            Format::Cbor => "application/cbor",
        }
    }

    fn feature(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::MsgPack => "msgpack",
            Format::Cbor => "cbor",
        }
    }

    fn disabled(self) -> String {
        format!(
            "the `{}` feature of ruststream is not enabled",
            self.feature()
        )
    }

    /// Decodes `bytes` as `T`.
    #[inline(always)]
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        #[cfg(any(feature = "json", feature = "msgpack", feature = "cbor"))]
        use crate::codec::Decode as _;
        match self {
            #[cfg(feature = "json")]
            Format::Json => crate::codec::Json.decode(bytes),
            #[cfg(feature = "msgpack")]
            Format::MsgPack => crate::codec::MsgPack.decode(bytes),
            #[cfg(feature = "cbor")]
            Format::Cbor => crate::codec::Cbor.decode(bytes),
            #[allow(unreachable_patterns)]
            other => Err(CodecError::decode::<T>(
                other.content_type(),
                bytes.len(),
                other.disabled(),
            )),
        }
    }

    /// Appends the encoding of `value` to `out`.
    pub fn encode<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        #[cfg(any(feature = "json", feature = "msgpack", feature = "cbor"))]
        use crate::codec::Encode as _;
        match self {
            #[cfg(feature = "json")]
            Format::Json => crate::codec::Json.encode(value, out),
            #[cfg(feature = "msgpack")]
            Format::MsgPack => crate::codec::MsgPack.encode(value, out),
            #[cfg(feature = "cbor")]
            Format::Cbor => crate::codec::Cbor.encode(value, out),
            #[allow(unreachable_patterns)]
            other => {
                let _ = (value, out);
                Err(CodecError::encode::<T>(
                    other.content_type(),
                    other.disabled(),
                ))
            }
        }
    }
}

#[cfg(feature = "json")]
impl From<crate::codec::Json> for Format {
    fn from(_: crate::codec::Json) -> Self {
        Format::Json
    }
}

#[cfg(feature = "msgpack")]
impl From<crate::codec::MsgPack> for Format {
    fn from(_: crate::codec::MsgPack) -> Self {
        Format::MsgPack
    }
}

#[cfg(feature = "cbor")]
impl From<crate::codec::Cbor> for Format {
    fn from(_: crate::codec::Cbor) -> Self {
        Format::Cbor
    }
}
