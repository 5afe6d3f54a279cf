//! Chunked upload intake: Content-Range parsing, streaming the body to staging, the
//! intake's slots and the floor under a body's pace.

pub mod content_range;
pub mod framing;
pub mod intake;
pub mod pace;
pub mod slots;
pub mod staging;
