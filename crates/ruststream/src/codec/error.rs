//! [`CodecError`].

/// A payload that could not be encoded or decoded. Carries the reason; never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a valid encoding of the target type.
    #[error("cannot decode a {content_type} payload of {len} bytes into `{target}`: {reason}")]
    Decode {
        /// The codec's content type.
        content_type: &'static str,
        /// The Rust type asked for.
        target: &'static str,
        /// The payload length.
        len: usize,
        /// What the decoder reported.
        reason: String,
    },
    /// The value could not be encoded.
    #[error("cannot encode `{source_type}` as {content_type}: {reason}")]
    Encode {
        /// The codec's content type.
        content_type: &'static str,
        /// The Rust type encoded.
        source_type: &'static str,
        /// What the encoder reported.
        reason: String,
    },
    /// The `content-type` header names another format.
    #[error(
        "the payload is labelled `{found}` but this codec reads `{expected}`: choose the matching codec for the subscriber"
    )]
    ContentType {
        /// What the codec reads.
        expected: &'static str,
        /// What the header said.
        found: String,
    },
}

impl CodecError {
    /// A [`Decode`](Self::Decode) error for target type `T`: for custom codecs.
    pub fn decode<T>(content_type: &'static str, len: usize, reason: impl ToString) -> Self {
        Self::Decode {
            content_type,
            target: std::any::type_name::<T>(),
            len,
            reason: reason.to_string(),
        }
    }

    /// An [`Encode`](Self::Encode) error for source type `T`: for custom codecs.
    pub fn encode<T: ?Sized>(content_type: &'static str, reason: impl ToString) -> Self {
        Self::Encode {
            content_type,
            source_type: std::any::type_name::<T>(),
            reason: reason.to_string(),
        }
    }
}
