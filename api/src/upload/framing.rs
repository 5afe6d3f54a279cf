//! Limits on a multipart body's framing, enforced on the bytes before `multer` parses
//! them. multer bounds the whole stream and each field's data, but buffers a preamble
//! and a part's header until their end appears, and searches that growing buffer again
//! on every frame: a 256 MiB header that never ends took ferry-api from 48 to 529 MiB
//! (issue 15). This scanner follows the framing (RFC 2046 §5.1.1: preamble, then
//! `--boundary`, each part's header up to a blank line, its data up to
//! `CRLF--boundary`) and fails as soon as a preamble or a part header outgrows its
//! limit, or the body has too many parts; data is only searched for the delimiter,
//! never held. See docs/SECURITY.md.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

/// Bytes allowed before the first boundary (clients send none).
pub const MAX_PREAMBLE_BYTES: usize = 1024;
/// Bytes allowed in one part's header block (nginx's `large_client_header_buffers`
/// size); it must hold a `Content-Disposition` with a 4 KiB file name.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// Parts allowed in one body; a chunk needs at most `file`, `filename`, `parent`, `md5`.
pub const MAX_PARTS: usize = 16;

/// The multipart boundary `content_type` names: `None` for a body that is not
/// `multipart/*` (read as the raw bytes or a form by the caller).
///
/// # Errors
/// 400 `malformed_body` for a `multipart/*` type without a usable `boundary`
/// parameter (RFC 2046 §5.1.1 and RFC 7578 §4.1 require one): such a body would otherwise be taken
/// for the file's own bytes.
pub fn boundary(content_type: Option<&str>) -> Result<Option<String>, crate::error::ApiError> {
    let Some(content_type) = content_type else { return Ok(None) };
    let is_multipart = content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().to_ascii_lowercase().starts_with("multipart/"));
    if !is_multipart {
        return Ok(None);
    }
    multer::parse_boundary(content_type).map(Some).map_err(|_| {
        crate::error::ApiError::bad_request(
            "malformed_body",
            "A multipart body needs a boundary parameter in its Content-Type (RFC 2046 §5.1.1, RFC 7578 §4.1).",
        )
    })
}

/// Which limit a body broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("the preamble before the first boundary exceeds {MAX_PREAMBLE_BYTES} bytes")]
    Preamble,
    #[error("a part's header exceeds {MAX_PART_HEADER_BYTES} bytes")]
    PartHeader,
    #[error("the body has more than {MAX_PARTS} parts")]
    Parts,
}

enum Stage {
    /// Looking for a delimiter; `limited` in the preamble.
    Seeking { limited: bool },
    /// After a delimiter, up to the blank line ending the part's header.
    Header,
    /// After the closing delimiter.
    Done,
}

/// Follows a multipart body's framing frame by frame.
pub struct Scanner {
    /// `CRLF--boundary`; the body is scanned as if it began with CRLF, so the first
    /// delimiter matches too.
    delimiter: Vec<u8>,
    stage: Stage,
    /// The last bytes seen while seeking (shorter than the delimiter), for a
    /// delimiter split across frames.
    tail: Vec<u8>,
    /// Preamble bytes so far.
    preamble: usize,
    /// The current part's header bytes so far (kept: at most the limit + 4).
    header: Vec<u8>,
    parts: usize,
}

impl Scanner {
    pub fn new(boundary: &str) -> Self {
        Scanner {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            stage: Stage::Seeking { limited: true },
            tail: b"\r\n".to_vec(),
            preamble: 0,
            header: Vec::new(),
            parts: 0,
        }
    }

    /// Follows `frame`; the first limit broken is an error.
    pub fn feed(&mut self, mut frame: &[u8]) -> Result<(), FramingError> {
        while !frame.is_empty() {
            match self.stage {
                Stage::Done => return Ok(()),
                Stage::Seeking { limited } => match self.find_delimiter(frame) {
                    Some(end) => {
                        if limited && self.preamble + end > MAX_PREAMBLE_BYTES + self.delimiter.len() {
                            return Err(FramingError::Preamble);
                        }
                        self.parts += 1;
                        if self.parts > MAX_PARTS + 1 {
                            return Err(FramingError::Parts);
                        }
                        self.stage = Stage::Header;
                        self.header.clear();
                        self.tail.clear();
                        frame = &frame[end..];
                    }
                    None => {
                        if limited {
                            self.preamble += frame.len();
                            if self.preamble > MAX_PREAMBLE_BYTES + self.delimiter.len() {
                                return Err(FramingError::Preamble);
                            }
                        }
                        self.keep_tail(frame);
                        return Ok(());
                    }
                },
                Stage::Header => {
                    let room = MAX_PART_HEADER_BYTES + 4 - self.header.len();
                    let before = self.header.len();
                    self.header.extend_from_slice(&frame[..frame.len().min(room)]);
                    if self.header.starts_with(b"--") {
                        self.stage = Stage::Done;
                        return Ok(());
                    }
                    match memchr::memmem::find(&self.header, b"\r\n\r\n") {
                        Some(at) => {
                            frame = &frame[at + 4 - before..];
                            self.stage = Stage::Seeking { limited: false };
                        }
                        None if self.header.len() >= MAX_PART_HEADER_BYTES + 4 => {
                            return Err(FramingError::PartHeader);
                        }
                        None => return Ok(()),
                    }
                }
            }
        }
        Ok(())
    }

    /// Where in `frame` the next delimiter ends, counting one split from the tail.
    fn find_delimiter(&self, frame: &[u8]) -> Option<usize> {
        let pattern = &self.delimiter;
        let mut joined = self.tail.clone();
        joined.extend_from_slice(&frame[..frame.len().min(pattern.len() - 1)]);
        memchr::memmem::find(&joined, pattern)
            .map(|at| at + pattern.len() - self.tail.len())
            .or_else(|| memchr::memmem::find(frame, pattern).map(|at| at + pattern.len()))
    }

    fn keep_tail(&mut self, frame: &[u8]) {
        let keep = self.delimiter.len() - 1;
        self.tail.extend_from_slice(&frame[frame.len().saturating_sub(keep)..]);
        let excess = self.tail.len().saturating_sub(keep);
        self.tail.drain(..excess);
    }
}

/// A body stream under a [`Scanner`]: passes frames on until one breaks a limit, then
/// yields that [`FramingError`] (boxed, as multer takes stream errors).
pub struct Framed<S> {
    inner: S,
    scanner: Scanner,
}

impl<S> Framed<S> {
    pub fn new(inner: S, boundary: &str) -> Self {
        Framed { inner, scanner: Scanner::new(boundary) }
    }
}

impl<S, E> Stream for Framed<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(frame))) => match this.scanner.feed(&frame) {
                Ok(()) => Poll::Ready(Some(Ok(frame))),
                Err(error) => Poll::Ready(Some(Err(Box::new(error)))),
            },
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A well-formed body of `parts` parts, each header padded by `header_pad` bytes,
    /// after a preamble of `preamble` bytes.
    fn body(parts: usize, header_pad: usize, preamble: usize) -> Vec<u8> {
        let mut body = vec![b'p'; preamble];
        if preamble > 0 {
            body.extend_from_slice(b"\r\n");
        }
        for i in 0..parts {
            let pad = "h".repeat(header_pad);
            let part = format!("--xyz\r\nContent-Disposition: form-data; name=\"f{i}\"\r\nX: {pad}\r\n\r\ndata{i}\r\n");
            body.extend_from_slice(part.as_bytes());
        }
        body.extend_from_slice(b"--xyz--\r\n");
        body
    }

    fn scan(body: &[u8], step: usize) -> Result<(), FramingError> {
        let mut scanner = Scanner::new("xyz");
        body.chunks(step.max(1)).try_for_each(|frame| scanner.feed(frame))
    }

    #[test]
    fn limits_hold_whatever_the_framing() {
        assert_eq!(scan(&body(4, 10, 0), 7), Ok(()));
        assert_eq!(scan(&body(MAX_PARTS, 10, 0), 3), Ok(()));
        assert_eq!(scan(&body(MAX_PARTS + 2, 10, 0), 3), Err(FramingError::Parts));
        assert_eq!(scan(&body(1, MAX_PART_HEADER_BYTES + 10, 0), 1000), Err(FramingError::PartHeader));
        assert_eq!(scan(&body(1, 0, MAX_PREAMBLE_BYTES + 100), 1000), Err(FramingError::Preamble));
        assert_eq!(scan(&body(2, 0, 100), 5), Ok(()));
        // A header that never ends fails within its limit, however long the body.
        let endless =
            [b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n".as_slice(), &[b'a'; 1 << 20]].concat();
        assert_eq!(scan(&endless, 4096), Err(FramingError::PartHeader));
        // A body without any boundary is a preamble.
        assert_eq!(scan(&[b'a'; 1 << 16], 4096), Err(FramingError::Preamble));
    }

    proptest! {
        /// Any split of a well-formed body into frames gives the same verdict.
        #[test]
        fn frame_splits_do_not_matter(step in 1usize..200, parts in 1usize..20, pad in 0usize..50) {
            let whole = scan(&body(parts, pad, 0), usize::MAX);
            prop_assert_eq!(scan(&body(parts, pad, 0), step), whole);
        }
    }
}
