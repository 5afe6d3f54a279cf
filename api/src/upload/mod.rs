//! Chunked upload intake: Content-Range parsing, streaming the body to staging, the
//! floor under a body's pace and the multipart framing limits.

pub mod content_range;
pub mod framing;
pub mod intake;
pub mod pace;
pub mod running_md5;
pub mod staging;
