//! Conversions between the database's signed integers and Ferry's unsigned newtypes.

use ferry_shared::types::ByteSize;

use crate::StoreError;

/// A `BIGINT` byte count read from `column`; negative is corrupt (the schema forbids it).
pub(crate) fn size_from_db(column: &'static str, value: i64) -> Result<ByteSize, StoreError> {
    u64::try_from(value).map(ByteSize).map_err(|_| StoreError::Corrupt { column, value: value.to_string() })
}

/// A byte count to bind as `BIGINT`; beyond `i64::MAX` it cannot be stored.
pub(crate) fn size_to_db(what: &'static str, size: ByteSize) -> Result<i64, StoreError> {
    i64::try_from(size.0).map_err(|_| StoreError::OutOfRange { what, value: size.0 })
}
