//! JSON answers to request heads hyper would refuse with an empty body, and a
//! lingering close.
//!
//! hyper answers a request head it cannot take before any of Ferry's code runs: `400`
//! (a malformed request line or header field, a bad `Content-Length` or
//! `Transfer-Encoding`), `414` (a request target over 65,534 bytes) and `431` (a header
//! section over its read buffer or with more than 100 fields), each with an empty body
//! and no way to change it (hyper 1.x, `proto/h1/role.rs`, `Server::on_error`). Every
//! other error of Ferry's is JSON `{"detail", "code"}` (docs/API.md).
//!
//! So each connection's reader, [`RequestHeads`], checks every request head before
//! hyper sees a byte of it, with the parser hyper uses (httparse) and the same rules,
//! and stricter sizes: [`MAX_HEAD_BYTES`] where hyper allows about 408 KiB, and
//! [`MAX_TARGET_BYTES`]. A head it
//! refuses never reaches hyper; hyper reads in its place a small request of ours,
//! `Connection: close`, which the connection's service answers with the JSON error
//! ([`Refusals::on_request`], [`refusal_response`]) in hyper's own turn, after every
//! answer before it, and then the connection closes as hyper's own refusal would.
//!
//! To know where each head starts, the reader follows each request's framing as hyper
//! does (RFC 9112 §6.3): a `Transfer-Encoding` ending in `chunked` is followed chunk by
//! chunk, a `Content-Length` byte by byte, and anything else has no body. Body bytes are
//! read straight into hyper's buffer, never more than the body has left, so no copy is
//! added on the way of a file's bytes. Where a request leaves the rules this reader
//! checks (an upgrade, `CONNECT`, chunk framing it cannot read), it stops checking and
//! passes every later byte through: hyper then answers as it did before, so a mistake
//! here can only ever leave an empty-bodied refusal, never change a request's bytes.
//! Only the request side is read; responses (a download's bytes) pass untouched.
//!
//! Knowing where the request stream stands also tells when a close would cut a client
//! off mid-send: an answer given while its request's body is still on its way says
//! `Connection: close` ([`Refusals::announce_close`]; hyper closes such a connection
//! after the answer but decides so only once the head is written), and a connection
//! that hyper shuts down mid-request lingers ([`Linger`], RFC 9112 §9.6) so the answer
//! already written is not lost to a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest request head (request line and header fields, with their line ends)
/// taken; a larger one is answered `431 header_fields_too_large`. hyper's own bound is
/// its read buffer, about 408 KiB; this one also bounds what a connection holds while
/// a head arrives.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most header fields in one head, as hyper (its `DEFAULT_MAX_HEADERS`); more is
/// `431 header_fields_too_large`.
pub const MAX_HEADER_FIELDS: usize = 100;

/// The longest request target (path and query), 16 KiB; longer is `414 uri_too_long`.
/// RFC 9110 §4.1 asks for at least 8,000 octets; hyper's own bound (`MAX_URI_LEN`,
/// 65,534 bytes) does not fit in [`MAX_HEAD_BYTES`].
pub const MAX_TARGET_BYTES: usize = 16 * 1024;

/// The longest chunk-size line (extensions included) or trailer line this reader
/// follows. hyper refuses more than 16 KiB of chunk extensions in a body or of trailers
/// (`CHUNKED_EXTENSIONS_LIMIT`, `TRAILER_LIMIT` in `proto/h1/decode.rs`) and then ends
/// the connection, so a longer line can only be the end of the connection anyway.
const MAX_CHUNK_LINE: usize = 16 * 1024 + 64;

/// The most read at once into the reader's own buffer (heads, chunk lines, trailers).
const READ_STEP: usize = 16 * 1024;

/// What hyper reads in place of a refused head: no body, and the connection closes
/// once it is answered.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n";

/// Which request of a connection was refused, and which one's body is still being
/// sent, shared by its reader and its service.
#[derive(Debug, Default)]
pub struct Refusals {
    /// The number (from 1) of the refused request, 0 while none is.
    refused: AtomicU64,
    status: AtomicU16,
    /// Requests the service has been called for so far.
    dispatched: AtomicU64,
    /// The number of the request whose body the reader has not yet read to its end,
    /// 0 while none has (or the reader no longer follows the stream).
    open_body: AtomicU64,
}

/// One request as the connection's service sees it ([`Refusals::on_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    /// Its number on the connection, from 1.
    pub number: u64,
    /// The status to answer with when it stands in for a refused head (answer it with
    /// [`refusal_response`], not the router).
    pub refused: Option<StatusCode>,
}

impl Refusals {
    /// One connection's record, to hand to [`RequestHeads::new`] and to its service.
    pub fn new() -> Arc<Refusals> {
        Arc::new(Refusals::default())
    }

    /// Called by the connection's service for every request hyper dispatches, in order.
    pub fn on_request(&self) -> Dispatched {
        let number = self.dispatched.fetch_add(1, Ordering::AcqRel) + 1;
        let refused = if self.refused.load(Ordering::Acquire) == number {
            StatusCode::from_u16(self.status.load(Ordering::Acquire)).ok()
        } else {
            None
        };
        Dispatched { number, refused }
    }

    /// Adds `Connection: close` to the answer to request `number` when its body has not
    /// been read to its end (an early `413`, a refused token, a quota refusal) and the
    /// answer names no connection option of its own: hyper then closes the connection
    /// after the answer (it reads at most what already arrived of the rest), and RFC
    /// 9112 §9.6 has a server that closes say so, so the client neither reuses the
    /// connection nor takes the close for a failure. Answers to requests whose bodies
    /// were read keep the connection open.
    pub fn announce_close(&self, number: u64, response: &mut Response<Body>) {
        if self.open_body.load(Ordering::Acquire) == number && !response.headers().contains_key(header::CONNECTION) {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }

    fn refuse(&self, number: u64, status: StatusCode) {
        self.status.store(status.as_u16(), Ordering::Release);
        self.refused.store(number, Ordering::Release);
    }
}

/// The JSON answer to a refused head: `400 malformed_request`, `414 uri_too_long` or
/// `431 header_fields_too_large`, with `Connection: close`.
pub fn refusal_response(status: StatusCode) -> Response<Body> {
    let (code, detail) = match status {
        StatusCode::URI_TOO_LONG => ("uri_too_long", "The request target is longer than 16 KiB."),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "header_fields_too_large",
            "The request's header section is larger than 64 KiB or has more than 100 fields.",
        ),
        _ => (
            "malformed_request",
            "The request line or a header field is malformed (RFC 9112), or its Content-Length or \
             Transfer-Encoding cannot be used.",
        ),
    };
    let body = serde_json::json!({ "detail": detail, "code": code }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Where the reader is in the request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// A request head (or the end of the connection) comes next.
    Head,
    /// This many bytes of a `Content-Length` body are left.
    Body(u64),
    /// A chunk-size line comes next.
    ChunkSize,
    /// This many bytes of a chunk's data are left, then its CRLF.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// The trailer section after the last chunk, up to its empty line.
    Trailers,
    /// No more checking: every byte goes through as it comes.
    Through,
    /// A head was refused; hyper got the stand-in and reads nothing more.
    Refused,
}

impl At {
    /// Whether the client still has body bytes (data, chunk framing or trailers) of
    /// the latest head to send.
    fn in_body(self) -> bool {
        matches!(self, At::Body(_) | At::ChunkSize | At::ChunkData(_) | At::ChunkEnd | At::Trailers)
    }
}

/// A connection's reader that checks each request head before hyper reads it (see
/// the module's documentation). Writes pass straight through.
#[derive(Debug)]
pub struct RequestHeads<T> {
    inner: T,
    /// Bytes read from `inner` and not yet given to hyper.
    held: BytesMut,
    /// How many bytes at the front of `held` are checked and may go to hyper.
    ready: usize,
    at: At,
    /// Heads given to hyper so far.
    heads: u64,
    /// How much of the head being gathered was already looked at: it is parsed again
    /// only once a new line has arrived (or the size bound is passed), so a head
    /// arriving a byte at a time costs one parse per line, not one per byte.
    scanned: usize,
    refusals: Arc<Refusals>,
    /// The lingering close under way, once hyper shuts the connection down.
    linger: Option<Box<Linger>>,
}

/// A lingering close (RFC 9112 §9.6): the write side is shut, and what the client still
/// sends is read and dropped until it closes too, so the kernel does not answer those
/// bytes with a reset that can destroy the answer before the client reads it (an early
/// `413`, or a refused head, while the client is still sending). Bounded by
/// [`LINGER_MAX`], [`LINGER_IDLE`] and [`LINGER_BYTES`], as nginx's `lingering_time`,
/// `lingering_timeout` and Apache's lingering close bound theirs.
#[derive(Debug)]
struct Linger {
    shut: bool,
    until: Pin<Box<tokio::time::Sleep>>,
    idle: Pin<Box<tokio::time::Sleep>>,
    left: usize,
    scratch: Box<[u8]>,
}

/// The longest a lingering close reads (nginx's `lingering_time` is 30 s).
pub const LINGER_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a lingering close waits for more bytes (nginx's `lingering_timeout`).
pub const LINGER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);
/// The most bytes a lingering close reads and drops.
pub const LINGER_BYTES: usize = 64 << 20;

impl<T> RequestHeads<T> {
    /// Wraps `inner`; `refusals` must be the record the connection's service consults.
    pub fn new(inner: T, refusals: Arc<Refusals>) -> RequestHeads<T> {
        RequestHeads {
            inner,
            held: BytesMut::new(),
            ready: 0,
            at: At::Head,
            heads: 0,
            scanned: 0,
            refusals,
            linger: None,
        }
    }

    /// Moves to `at`, and tells the service whether the request of the latest head has
    /// body bytes still to come from the client.
    fn set_at(&mut self, at: At) {
        let open = at.in_body();
        if open != self.at.in_body() {
            self.refusals.open_body.store(if open { self.heads } else { 0 }, Ordering::Release);
        }
        self.at = at;
    }

    /// Checks what `held` starts with in the current state: moves `ready` and `at` on
    /// and returns true when it got further, false when it needs more bytes.
    fn advance(&mut self) -> bool {
        let pending = &self.held[self.ready..];
        match self.at {
            At::Head => {
                if pending.len() > MAX_HEAD_BYTES {
                    self.refuse(too_large(pending));
                    return true;
                }
                let fresh = &pending[self.scanned.min(pending.len())..];
                if pending.is_empty() || (self.scanned > 0 && !fresh.contains(&b'\n')) {
                    self.scanned = pending.len();
                    return false;
                }
                self.scanned = pending.len();
                self.check()
            }
            At::Body(left) | At::ChunkData(left) => {
                if pending.is_empty() {
                    return false;
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(pending.len());
                self.ready += take;
                self.set_at(after_data(self.at, take));
                true
            }
            At::ChunkSize => match line(pending, MAX_CHUNK_LINE) {
                Line::Partial => false,
                Line::Complete(end) => {
                    let next = match chunk_size(&pending[..end - 2]) {
                        Some(0) => At::Trailers,
                        Some(size) => At::ChunkData(size),
                        None => At::Through,
                    };
                    self.ready += end;
                    self.set_at(next);
                    true
                }
                Line::TooLong => {
                    self.set_at(At::Through);
                    true
                }
            },
            At::ChunkEnd => {
                if pending.len() < 2 {
                    return false;
                }
                let next = if pending.starts_with(b"\r\n") { At::ChunkSize } else { At::Through };
                if next == At::ChunkSize {
                    self.ready += 2;
                }
                self.set_at(next);
                true
            }
            At::Trailers => match line(pending, MAX_CHUNK_LINE) {
                Line::Partial => false,
                Line::Complete(end) => {
                    if end == 2 {
                        self.set_at(At::Head);
                    }
                    self.ready += end;
                    true
                }
                Line::TooLong => {
                    self.set_at(At::Through);
                    true
                }
            },
            At::Through | At::Refused => false,
        }
    }

    /// Acts on the check of the head that the unchecked bytes start with.
    fn check(&mut self) -> bool {
        match check_head(&self.held[self.ready..]) {
            Head::Partial => false,
            Head::Complete { len, .. } if len > MAX_HEAD_BYTES => {
                self.refuse(too_large(&self.held[self.ready..]));
                true
            }
            Head::Complete { len, next } => {
                self.heads += 1;
                self.ready += len;
                self.scanned = 0;
                self.set_at(next);
                true
            }
            Head::Refuse(status) => {
                self.refuse(status);
                true
            }
        }
    }

    /// Replaces everything not yet given to hyper with the stand-in request and
    /// records which request it is.
    fn refuse(&mut self, status: StatusCode) {
        self.held.truncate(self.ready);
        self.held.extend_from_slice(STAND_IN);
        self.ready = self.held.len();
        self.heads += 1;
        self.refusals.refuse(self.heads, status);
        self.set_at(At::Refused);
        self.scanned = 0;
        tracing::debug!(status = status.as_u16(), "request head refused");
    }
}

/// The refusal of a head over [`MAX_HEAD_BYTES`]: `414` when its request line alone is
/// longer than a target may be, `431` otherwise.
fn too_large(head: &[u8]) -> StatusCode {
    let request_line = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    if request_line > MAX_TARGET_BYTES {
        StatusCode::URI_TOO_LONG
    } else {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    }
}

/// The state after `took` bytes of a body or chunk in state `at`.
fn after_data(at: At, took: usize) -> At {
    let took = u64::try_from(took).unwrap_or(u64::MAX);
    match at {
        At::Body(left) if left > took => At::Body(left - took),
        At::Body(_) => At::Head,
        At::ChunkData(left) if left > took => At::ChunkData(left - took),
        At::ChunkData(_) => At::ChunkEnd,
        other => other,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for RequestHeads<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // What is already here goes out in this call, as much as fits; more is read
        // only in a call that had nothing to give.
        let mut gave = false;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(buf.remaining());
                buf.put_slice(&this.held[..n]);
                this.held.advance(n);
                this.ready -= n;
                gave = true;
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.advance() {
                continue;
            }
            if gave {
                return Poll::Ready(Ok(()));
            }
            match this.at {
                // hyper reads nothing after the stand-in; the connection ends with its
                // answer.
                At::Refused => return Poll::Pending,
                At::Through if this.held.is_empty() => return Pin::new(&mut this.inner).poll_read(cx, buf),
                At::Through => {
                    this.ready = this.held.len();
                    continue;
                }
                // Body bytes go straight into hyper's buffer, never past the body's end:
                // all of the buffer while the body has that much left, else only the
                // part the body fills (zeroed first: a body's last read only).
                At::Body(left) | At::ChunkData(left) if this.held.is_empty() => {
                    let got = match usize::try_from(left) {
                        Ok(left) if left < buf.remaining() => {
                            let mut limited = ReadBuf::new(buf.initialize_unfilled_to(left));
                            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
                            let got = limited.filled().len();
                            buf.advance(got);
                            got
                        }
                        _ => {
                            let before = buf.filled().len();
                            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                            buf.filled().len() - before
                        }
                    };
                    this.set_at(after_data(this.at, got));
                    return Poll::Ready(Ok(()));
                }
                at => {
                    // A head, chunk line or trailer: gather it here first.
                    debug_assert!(!matches!(at, At::Body(_) | At::ChunkData(_)), "body bytes held: {at:?}");
                    let before = this.held.len();
                    this.held.resize(before + READ_STEP, 0);
                    let mut more = ReadBuf::new(&mut this.held[before..]);
                    let polled = Pin::new(&mut this.inner).poll_read(cx, &mut more);
                    let got = more.filled().len();
                    this.held.truncate(before + got);
                    std::task::ready!(polled)?;
                    if got == 0 {
                        // The end of the stream: give hyper what is left, then the end.
                        this.set_at(At::Through);
                        this.ready = before;
                        if before == 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RequestHeads<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Shuts the write side down; when the client may still be sending (hyper gave up
    /// on a body, or a head was refused, or bytes wait unread), the close lingers
    /// ([`Linger`]) before this returns and hyper drops the connection.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            let mid_request = !matches!(this.at, At::Head) || !this.held.is_empty();
            if !mid_request {
                return Pin::new(&mut this.inner).poll_shutdown(cx);
            }
            let now = tokio::time::Instant::now();
            this.linger = Some(Box::new(Linger {
                shut: false,
                until: Box::pin(tokio::time::sleep_until(now + LINGER_MAX)),
                idle: Box::pin(tokio::time::sleep_until(now + LINGER_IDLE)),
                left: LINGER_BYTES,
                scratch: vec![0; READ_STEP].into_boxed_slice(),
            }));
        }
        let Some(linger) = this.linger.as_mut() else { return Poll::Ready(Ok(())) };
        if !linger.shut {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            linger.shut = true;
        }
        loop {
            if linger.until.as_mut().poll(cx).is_ready() || linger.idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut scratch = ReadBuf::new(&mut linger.scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut scratch) {
                Poll::Ready(Ok(())) if !scratch.filled().is_empty() => {
                    linger.left = linger.left.saturating_sub(scratch.filled().len());
                    if linger.left == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let next = tokio::time::Instant::now() + LINGER_IDLE;
                    linger.idle.as_mut().reset(next);
                }
                // The client closed too (or the connection failed): done.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// What a request head's check found.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Not all of it has arrived.
    Partial,
    /// A head of `len` bytes hyper takes; `next` follows it.
    Complete { len: usize, next: At },
    /// hyper would refuse it with this status.
    Refuse(StatusCode),
}

/// Checks a request head at the start of `bytes` as hyper's server does
/// (`proto/h1/role.rs`, `Server::parse`): httparse's default (strict) rules, at most
/// [`MAX_HEADER_FIELDS`] fields, a target of at most [`MAX_TARGET_BYTES`], and the body
/// framing of RFC 9112 §6.3 (a `Transfer-Encoding` must end in `chunked`, and only in
/// HTTP/1.1; `Content-Length` must be digits, repeated only with the same value, and
/// is ignored after a `Transfer-Encoding`), and a target `http::Uri` parses.
fn check_head(bytes: &[u8]) -> Head {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return Head::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(_) => return Head::Refuse(StatusCode::BAD_REQUEST),
    };
    let target = request.path.unwrap_or_default();
    if target.len() > MAX_TARGET_BYTES {
        return Head::Refuse(StatusCode::URI_TOO_LONG);
    }
    if axum::http::Uri::try_from(target).is_err() {
        return Head::Refuse(StatusCode::BAD_REQUEST);
    }
    if request.method == Some("CONNECT") {
        return Head::Complete { len, next: At::Through };
    }
    let http11 = request.version == Some(1);
    let (mut length, mut chunked, mut coded, mut upgrade) = (None, false, false, false);
    for field in request.headers.iter() {
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Head::Refuse(StatusCode::BAD_REQUEST);
            }
            coded = true;
            chunked = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if field.name.eq_ignore_ascii_case("content-length") {
            // hyper ignores a Content-Length after a Transfer-Encoding.
            if coded {
                continue;
            }
            let Some(value) = digits(field.value) else { return Head::Refuse(StatusCode::BAD_REQUEST) };
            if length.is_some_and(|known| known != value) {
                return Head::Refuse(StatusCode::BAD_REQUEST);
            }
            length = Some(value);
        } else if field.name.eq_ignore_ascii_case("upgrade") {
            upgrade = http11;
        }
    }
    if coded && !chunked {
        return Head::Refuse(StatusCode::BAD_REQUEST);
    }
    let next = if upgrade {
        At::Through
    } else if chunked {
        At::ChunkSize
    } else {
        match length {
            Some(0) | None => At::Head,
            Some(n) => At::Body(n),
        }
    };
    Head::Complete { len, next }
}

/// A `Content-Length` value: ASCII digits only, as hyper's `from_digits`.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A line ending in CRLF at the start of some bytes.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Partial,
    /// It ends this many bytes in, its CRLF included.
    Complete(usize),
    /// No CRLF within the bound.
    TooLong,
}

fn line(bytes: &[u8], max: usize) -> Line {
    match bytes.windows(2).take(max).position(|w| w == b"\r\n") {
        Some(at) => Line::Complete(at + 2),
        None if bytes.len() >= max => Line::TooLong,
        None => Line::Partial,
    }
}

/// A chunk-size line's size, read as hyper's decoder reads it (`read_start`,
/// `read_size`, `read_size_lws`, `read_extension`): at least one hex digit, any number
/// of them while the value fits in 64 bits (leading zeros too), then optional spaces or
/// tabs, then optionally `;` and extensions without a bare LF. `None` for anything
/// hyper refuses (it then ends the connection).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let size = line[..digits]
        .iter()
        .try_fold(0u64, |n, &b| n.checked_mul(16)?.checked_add(u64::from(char::from(b).to_digit(16)?)))?;
    let rest = &line[digits..];
    let lws = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    match &rest[lws..] {
        [] => Some(size),
        [b';', extensions @ ..] if !extensions.contains(&b'\n') => Some(size),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Runs hyper's server over one end of an in-memory pipe, through [`RequestHeads`],
    /// with a service that echoes each request's method, target and body; sends `input`
    /// (in `step`-byte writes) and returns everything the server wrote until it closed
    /// or went quiet.
    async fn serve(input: Vec<u8>, step: usize) -> String {
        let (client, server) = tokio::io::duplex(1 << 20);
        let refusals = Refusals::new();
        let seen = refusals.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let dispatched = seen.on_request();
            let seen = seen.clone();
            async move {
                if let Some(status) = dispatched.refused {
                    return Ok::<_, std::convert::Infallible>(refusal_response(status));
                }
                let head = format!("{} {}|", request.method(), request.uri());
                if request.uri().path() == "/early" {
                    // Answers without reading the body, as an early 413 does.
                    let mut response = Response::new(Body::from(head));
                    seen.announce_close(dispatched.number, &mut response);
                    return Ok(response);
                }
                let body = http_body_util::BodyExt::collect(request.into_body())
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .unwrap_or_else(|e| format!("body error: {e}").into_bytes());
                let mut response = Response::new(Body::from([head.into_bytes(), body].concat()));
                seen.announce_close(dispatched.number, &mut response);
                Ok(response)
            }
        });
        let io = hyper_util::rt::TokioIo::new(RequestHeads::new(server, refusals));
        tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
        let (mut read, mut write) = tokio::io::split(client);
        tokio::spawn(async move {
            for part in input.chunks(step.max(1)) {
                if write.write_all(part).await.is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    fn bodies(said: &str) -> Vec<String> {
        said.split("HTTP/1.1 ")
            .skip(1)
            .map(|r| {
                let (head, body) = r.split_once("\r\n\r\n").unwrap_or((r, ""));
                format!("{}|{body}", head.split(' ').next().unwrap_or_default())
            })
            .collect()
    }

    #[tokio::test]
    async fn requests_that_look_like_heads_inside_bodies_pass_untouched() {
        // A body holding what would be a refused head, then a chunked body holding
        // one, then a plain GET: all three answered as sent, whatever the write sizes.
        let bad = "GET /x HTTP/1.1\r\nBad Field\r\n\r\n";
        let input = format!(
            "POST /a HTTP/1.1\r\ncontent-length: {}\r\n\r\n{bad}\
             PUT /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{:x};ext=1\r\n{bad}\r\n3\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n\
             GET /c HTTP/1.1\r\nconnection: close\r\n\r\n",
            bad.len(),
            bad.len()
        );
        for step in [1, 7, 4096] {
            let said = serve(input.clone().into_bytes(), step).await;
            assert_eq!(
                bodies(&said),
                [format!("200|POST /a|{bad}"), format!("200|PUT /b|{bad}abc"), "200|GET /c|".to_owned()],
                "step {step}: {said:?}"
            );
        }
    }

    #[tokio::test]
    async fn refused_heads_get_json_after_the_answers_before_them() {
        let many: String = (0..150).map(|i| format!("x-field-{i}: {i}\r\n")).collect();
        let huge = format!("x-big: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        for (bad, status, code) in [
            ("GET /h HTTP/1.1\r\nBad Field\r\n\r\n".to_owned(), "400", "malformed_request"),
            ("POST /h HTTP/1.1\r\ncontent-length: 1x\r\n\r\n".to_owned(), "400", "malformed_request"),
            ("POST /h HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n".to_owned(), "400", "malformed_request"),
            (
                "POST /h HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab".to_owned(),
                "400",
                "malformed_request",
            ),
            (format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(70_000)), "414", "uri_too_long"),
            (format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET_BYTES)), "414", "uri_too_long"),
            (format!("GET /h HTTP/1.1\r\n{many}\r\n"), "431", "header_fields_too_large"),
            (format!("GET /h HTTP/1.1\r\n{huge}\r\n"), "431", "header_fields_too_large"),
        ] {
            // After a request with a body on the same connection.
            let input = format!("POST /ok HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi{bad}GET /never HTTP/1.1\r\n\r\n");
            let said = serve(input.into_bytes(), 1000).await;
            let answers = bodies(&said);
            assert_eq!(answers.len(), 2, "{code}: {said:?}");
            assert_eq!(answers[0], "200|POST /ok|hi");
            let json: serde_json::Value =
                serde_json::from_str(answers[1].split_once('|').map_or("", |(_, b)| b)).unwrap_or_default();
            assert!(answers[1].starts_with(&format!("{status}|")) && json["code"] == code, "{code}: {said:?}");
            assert!(said.to_ascii_lowercase().contains("content-type: application/json"), "{said:?}");
        }
    }

    #[tokio::test]
    async fn large_bodies_arrive_byte_for_byte() {
        // 300 KiB of printable bytes (compared as text), as a Content-Length body and as chunks of odd
        // sizes, each followed by a request on the same connection.
        let body: Vec<u8> = (0..300 * 1024u32).map(|i| b" ~"[0] + (i * 7 % 95) as u8).collect();
        let mut input = format!("PUT /cl HTTP/1.1\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend_from_slice(&body);
        input.extend_from_slice(b"PUT /chunked HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n");
        for part in body.chunks(12_345) {
            input.extend_from_slice(format!("{:X}\r\n", part.len()).as_bytes());
            input.extend_from_slice(part);
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b"0\r\n\r\nGET /end HTTP/1.1\r\nconnection: close\r\n\r\n");
        let text = String::from_utf8_lossy(&body).into_owned();
        for step in [1000, 65_536, 1 << 20] {
            let said = serve(input.clone(), step).await;
            assert_eq!(
                bodies(&said),
                [format!("200|PUT /cl|{text}"), format!("200|PUT /chunked|{text}"), "200|GET /end|".to_owned()],
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn heads_after_odd_but_valid_chunk_framing_are_still_checked() {
        // What hyper takes (the trial of stop 29 found the checks stopped after each):
        // a 17-digit chunk size, a 10 KiB extension, a 10 KiB trailer line.
        let big = "a".repeat(10 * 1024);
        let huge = format!("x-big: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        for body in [
            "00000000000000005\r\nhello\r\n0\r\n\r\n".to_owned(),
            format!("5;ext={big}\r\nhello\r\n0\r\n\r\n"),
            format!("5\r\nhello\r\n0\r\nx-trailer: {big}\r\n\r\n"),
        ] {
            let input =
                format!("PUT /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{body}GET /h HTTP/1.1\r\n{huge}\r\n");
            let said = serve(input.into_bytes(), 4096).await;
            let answers = bodies(&said);
            assert_eq!(answers.first().map(String::as_str), Some("200|PUT /c|hello"), "{said:.300}");
            assert!(
                answers.get(1).is_some_and(|a| a.starts_with("431|") && a.contains("header_fields_too_large")),
                "{said:.600}"
            );
        }
    }

    #[tokio::test]
    async fn an_answer_before_the_body_has_arrived_says_close() {
        // The body's head and a quarter of it: the early answer says close, and hyper
        // closes after it.
        let input = "POST /early HTTP/1.1\r\ncontent-length: 400000\r\n\r\n".to_owned() + &"a".repeat(100_000);
        let said = serve(input.into_bytes(), 4096).await;
        assert!(
            said.starts_with("HTTP/1.1 200 ") && said.to_ascii_lowercase().contains("connection: close\r\n"),
            "{said:.300}"
        );
        assert_eq!(bodies(&said), ["200|POST /early|"], "{said:.300}");
        // Bodies read to their end, chunked or not, keep the connection for the next
        // request; so does a small body that had arrived whole when it was answered.
        let input = "PUT /a HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello\
                     PUT /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
                     POST /early HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello\
                     GET /c HTTP/1.1\r\n\r\n";
        let said = serve(input.as_bytes().to_vec(), 1 << 20).await;
        assert!(!said.to_ascii_lowercase().contains("connection: close"), "{said}");
        assert_eq!(
            bodies(&said),
            ["200|PUT /a|hello", "200|PUT /b|hello", "200|POST /early|", "200|GET /c|"],
            "{said}"
        );
    }

    #[tokio::test]
    async fn what_it_cannot_follow_goes_through_to_hyper() {
        // A chunk-size line it does not read (not hex): hyper's own decoder decides.
        let input = "PUT /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
        let said = serve(input.as_bytes().to_vec(), 4096).await;
        assert!(!said.contains("malformed_request"), "{said:?}");
    }

    #[test]
    fn chunk_sizes_and_lengths_parse_as_hyper_reads_them() {
        assert_eq!(chunk_size(b"1A"), Some(26));
        assert_eq!(chunk_size(b"0;name=value"), Some(0));
        assert_eq!(chunk_size(b""), None);
        assert_eq!(chunk_size(b"00000000000000000005"), Some(5), "leading zeros, as hyper");
        assert_eq!(chunk_size(b"12345678901234567"), None, "over 64 bits");
        assert_eq!(chunk_size(b"5 \t;a=b"), Some(5));
        assert_eq!(chunk_size(b"5 x"), None);
        assert_eq!(digits(b"42"), Some(42));
        assert_eq!(digits(b"+4"), None);
        assert_eq!(digits(b"99999999999999999999"), None);
        assert_eq!(line(b"ab\r\ncd", 10), Line::Complete(4));
        assert_eq!(line(b"abcdef", 4), Line::TooLong);
        assert_eq!(line(b"ab", 4), Line::Partial);
    }
}
