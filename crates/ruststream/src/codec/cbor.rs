//! The CBOR codec (feature `cbor`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, CodecError, Decode, Encode};

/// CBOR (RFC 8949) through `ciborium`; content type `application/cbor`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cbor;

const CONTENT_TYPE: &str = "application/cbor";

impl Codec for Cbor {
    fn content_type(&self) -> &'static str {
        CONTENT_TYPE
    }
}

impl<T: Serialize + ?Sized> Encode<T> for Cbor {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        ciborium::into_writer(value, out).map_err(|e| CodecError::encode::<T>(CONTENT_TYPE, e))
    }
}

impl<T: DeserializeOwned> Decode<T> for Cbor {
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        ciborium::from_reader(bytes)
            .map_err(|e| CodecError::decode::<T>(CONTENT_TYPE, bytes.len(), e))
    }
}
