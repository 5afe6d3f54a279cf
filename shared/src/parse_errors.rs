//! JSON bodies for the answers hyper writes on its own.
//!
//! hyper answers a request it cannot parse before any of Ferry's code sees it: `400`
//! (a malformed request line or header field), `414` (a request target longer than
//! 65,534 bytes) and `431` (a header section larger than hyper's read buffer, about
//! 400 KiB, or with more than 100 fields), each with an empty body and no way to change
//! it (hyper 1.x, `proto/h1/role.rs`, `Server::on_error`; the connection closes after
//! it). Every other error of Ferry's is JSON `{"detail", "code"}` (docs/API.md).
//!
//! So each connection's writer, [`JsonParseErrors`], recognises those three answers as
//! hyper writes them and writes each with its JSON body instead. Ferry's own `400`,
//! `414` and `431` always carry a JSON body, so a response head with one of those
//! statuses, `content-length: 0` and nothing after it can only be hyper's. Anything
//! else passes through untouched, in the same calls.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The JSON body written for hyper's automatic answer with `status`, if it is one.
fn body_for(status: &[u8]) -> Option<&'static str> {
    Some(match status {
        b"400" => {
            r#"{"detail":"The request could not be parsed as HTTP/1.1: its request line or a header field is malformed.","code":"malformed_request"}"#
        }
        b"414" => r#"{"detail":"The request target (URI) is longer than 65,534 bytes.","code":"uri_too_long"}"#,
        b"431" => {
            r#"{"detail":"The request's header section is too large (over about 400 KiB, or over 100 fields).","code":"header_fields_too_large"}"#
        }
        _ => return None,
    })
}

/// `head` with a JSON body, when it is one of hyper's bodiless parse-error answers (the
/// whole of `head`: status line, header fields, blank line, nothing after it); `None`
/// for anything else.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 ").or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
    let body = body_for(rest.get(..3)?)?;
    let fields_end = head.len().checked_sub(4)?;
    if &head[fields_end..] != b"\r\n\r\n" || head[..fields_end].windows(4).any(|w| w == b"\r\n\r\n") {
        return None;
    }
    let mut lines = head[..fields_end].split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next()?;
    let mut fields = Vec::new();
    let mut bodiless = false;
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with(b"content-type:") {
            return None;
        }
        if lower.starts_with(b"content-length:") {
            bodiless = lower[b"content-length:".len()..].trim_ascii() == b"0";
            continue;
        }
        if !lower.starts_with(b"connection:") {
            fields.push(line);
        }
    }
    if !bodiless {
        return None;
    }
    let mut out = Vec::with_capacity(head.len() + body.len() + 128);
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\r\n");
    for field in fields {
        out.extend_from_slice(field);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        b"content-type: application/json\r\nx-content-type-options: nosniff\r\nconnection: close\r\n",
    );
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// A rewritten answer on its way out.
struct Pending {
    bytes: Vec<u8>,
    written: usize,
    /// The length of hyper's head, reported as written once all of `bytes` is.
    replaces: usize,
}

/// A connection whose writes carry hyper's automatic parse-error answers with a JSON
/// body (module doc); reads and every other write go straight to `T`.
pub struct JsonParseErrors<T> {
    inner: T,
    pending: Option<Pending>,
}

impl<T> JsonParseErrors<T> {
    pub fn new(inner: T) -> Self {
        JsonParseErrors { inner, pending: None }
    }
}

impl<T: AsyncWrite + Unpin> JsonParseErrors<T> {
    /// Writes the rest of the rewritten answer; once all of it is out, reports hyper's
    /// head as written (so hyper never sees a partial write of it).
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(pending) = self.pending.as_mut() else { return Poll::Ready(Ok(0)) };
        while pending.written < pending.bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &pending.bytes[pending.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            pending.written += n;
        }
        let replaces = pending.replaces;
        self.pending = None;
        Poll::Ready(Ok(replaces))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            match rewrite(buf) {
                Some(bytes) => this.pending = Some(Pending { bytes, written: 0, replaces: buf.len() }),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        this.poll_pending(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            // hyper's answer is one buffer, its head, and nothing after it.
            let first = bufs.iter().position(|b| !b.is_empty());
            let lone_head = first.filter(|&i| bufs[i + 1..].iter().all(|b| b.is_empty()));
            match lone_head.and_then(|i| rewrite(&bufs[i]).map(|bytes| (bytes, bufs[i].len()))) {
                Some((bytes, replaces)) => this.pending = Some(Pending { bytes, written: 0, replaces }),
                None => return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            }
        }
        this.poll_pending(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const DATE: &str = "date: Tue, 01 Dec 2026 17:00:00 GMT\r\n";

    #[test]
    fn hypers_bodiless_parse_error_answers_get_their_json_body() {
        for (status, code) in [
            ("400 Bad Request", "malformed_request"),
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "header_fields_too_large"),
        ] {
            let head = format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}\r\n");
            let out = String::from_utf8(rewrite(head.as_bytes()).unwrap_or_default()).unwrap_or_default();
            let (fields, body) = out.split_once("\r\n\r\n").unwrap_or_default();
            assert!(fields.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{out}");
            assert!(fields.contains("\r\ncontent-type: application/json\r\n") && fields.contains(DATE.trim_end()));
            assert_eq!(fields.matches("connection: close").count(), 1, "{out}");
            assert!(fields.contains(&format!("\r\ncontent-length: {}", body.len())), "{out}");
            let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            assert_eq!(json["code"], code, "{out}");
            assert!(json["detail"].as_str().is_some_and(|d| !d.is_empty()), "{out}");
        }
    }

    #[test]
    fn every_other_write_passes_untouched() {
        for head in [
            // Ferry's own errors carry their body and type.
            format!("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n{DATE}\r\n"),
            format!("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 12\r\n{DATE}\r\n"),
            // Other statuses, and a head followed by more bytes.
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{DATE}\r\n"),
            format!("HTTP/1.1 204 No Content\r\n{DATE}\r\n"),
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{DATE}\r\nbody"),
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\n{DATE}\r\n"),
            // A body's bytes that happen to start like a head.
            "HTTP/1.1 400 Bad Request".to_owned(),
            String::new(),
        ] {
            assert_eq!(rewrite(head.as_bytes()), None, "{head:?}");
        }
    }

    #[tokio::test]
    async fn the_rewritten_answer_goes_out_whole_and_counts_as_hypers_head() -> io::Result<()> {
        // A pipe of 16 bytes: the answer takes many writes, hyper sees one.
        let (client, server) = tokio::io::duplex(16);
        let mut conn = JsonParseErrors::new(server);
        let head = format!("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n{DATE}\r\n");
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut seen = Vec::new();
            client.read_to_end(&mut seen).await.map(|_| seen)
        });
        let n = conn.write(head.as_bytes()).await?;
        assert_eq!(n, head.len());
        conn.write_all(b"").await?;
        conn.shutdown().await?;
        drop(conn);
        let seen = String::from_utf8(reader.await.map_err(io::Error::other)??).unwrap_or_default();
        assert!(seen.ends_with(r#""code":"header_fields_too_large"}"#), "{seen}");
        Ok(())
    }
}
