//! Chunked upload intake: Content-Range parsing, streaming the body to staging.

pub mod content_range;
pub mod intake;
pub mod staging;
