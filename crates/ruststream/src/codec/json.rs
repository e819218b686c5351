//! The JSON codec (default feature `json`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, CodecError, Decode, Encode};

/// JSON through `serde_json`; content type `application/json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json;

const CONTENT_TYPE: &str = "application/json";

impl Codec for Json {
    fn content_type(&self) -> &'static str {
        CONTENT_TYPE
    }
}

impl<T: Serialize + ?Sized> Encode<T> for Json {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        serde_json::to_writer(out, value).map_err(|e| CodecError::encode::<T>(CONTENT_TYPE, e))
    }
}

impl<T: DeserializeOwned> Decode<T> for Json {
    #[inline(always)]
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes)
            .map_err(|e| CodecError::decode::<T>(CONTENT_TYPE, bytes.len(), e))
    }
}
