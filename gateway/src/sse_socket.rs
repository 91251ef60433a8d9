//! `GET /v1/sse` served on the socket itself, without hyper.
//!
//! Why: hyper keeps an 8 KiB read buffer and an 8 KiB buffer for response
//! heads per HTTP/1 connection for as long as the connection lives, and its
//! connection state besides. An SSE response lives for hours and needs none
//! of it once its head is written, so an idle SSE connection cost ~14 KiB of
//! RSS where a WebSocket (which leaves hyper at the upgrade) cost ~8.
//!
//! Only HTTP framing is done here. The request goes through the same router
//! as every other (auth, CORS, query validation, errors, response headers):
//! this module parses the head into a `Request`, and writes the `Response`
//! (the event stream, or an error) with HTTP/1.1 framing, as hyper would.
//!
//! Whatever this module does not take on with certainty goes to hyper
//! unchanged, the bytes already read put back in front
//! ([`crate::rewind::Rewind`]): another route, HTTP/1.0, a request with a
//! body or with `Expect` or `Upgrade`, a head hyper would reject (hyper then
//! answers `400` or `431`, as it always did). After a response written
//! here, the socket goes back to hyper for its next request (HTTP/1
//! keep-alive), with any bytes the client sent meanwhile.

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use futures_util::Stream;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The request line this module serves starts so, then a space or a `?`.
const PREFIX: &[u8] = b"GET /v1/sse";

/// hyper's own limit on a buffered head (its default `max_buf_size`). An
/// unfinished head this long goes to hyper, which refuses it at once
/// (`431`), so a head handed over unfinished never gets a second
/// header-read timeout.
pub const MAX_HEAD: usize = 8192 + 4096 * 100;

/// As many header lines as hyper accepts by default; more, and hyper
/// answers `431`.
const MAX_HEADERS: usize = 100;

/// Bytes a client may send on a socket while its stream is written (a
/// request pipelined behind it); more, and the socket is closed.
const MAX_PIPELINED: usize = 16 * 1024;

/// What a socket's first request turned out to be.
// Built once per socket and taken apart at once: boxing the request would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Head {
    /// A complete, plain `GET /v1/sse`: it is served here. Its bytes have
    /// been taken out of the buffer; what follows them stays.
    Sse {
        req: Request<Body>,
        keep_alive: bool,
    },
    /// Anything else: hyper serves the socket, the buffer first.
    Hyper,
    /// The socket failed or closed before sending anything.
    Closed,
}

/// Reads until the buffered bytes say whether they are a request this
/// module serves. Cancel-safe: what was read stays in `buf`.
pub async fn read_head<I: AsyncRead + Unpin>(io: &mut I, buf: &mut Vec<u8>) -> Head {
    loop {
        match classify(buf) {
            Class::Undecided => {}
            Class::Hyper => return Head::Hyper,
            Class::Sse {
                req,
                keep_alive,
                len,
            } => {
                buf.drain(..len);
                return Head::Sse { req, keep_alive };
            }
        }
        if buf.len() == buf.capacity() {
            // `classify` leaves `buf` shorter than MAX_HEAD.
            buf.reserve(buf.len().max(1024).min(MAX_HEAD - buf.len()));
        }
        match io.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Head::Closed,
            // hyper answers a head cut short as it always did.
            Ok(0) => return Head::Hyper,
            Ok(_) => {}
            Err(_) => return Head::Closed,
        }
    }
}

#[allow(clippy::large_enum_variant)]
enum Class {
    Undecided,
    Hyper,
    Sse {
        req: Request<Body>,
        keep_alive: bool,
        len: usize,
    },
}

fn classify(buf: &[u8]) -> Class {
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Class::Hyper;
    }
    match buf.get(PREFIX.len()) {
        None => return Class::Undecided,
        Some(b' ' | b'?') => {}
        Some(_) => return Class::Hyper,
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => match request(&parsed) {
            Some((req, keep_alive)) => Class::Sse {
                req,
                keep_alive,
                len,
            },
            None => Class::Hyper,
        },
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Class::Undecided,
        _ => Class::Hyper,
    }
}

/// The request, if it is one this module serves as hyper would: HTTP/1.1,
/// no body (`Content-Length: 0` at most), nothing to negotiate, a URI and
/// headers `http` accepts.
fn request(parsed: &httparse::Request<'_, '_>) -> Option<(Request<Body>, bool)> {
    if parsed.version != Some(1) {
        return None;
    }
    let uri: Uri = parsed.path?.parse().ok()?;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    let mut keep_alive = true;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        // Some clients send `Content-Length: 0` on a GET: no body either.
        let empty = name == "content-length" && h.value == b"0";
        if (name == "content-length" && !empty) || name == "transfer-encoding" {
            return None;
        }
        if name == "expect" || name == "upgrade" {
            return None;
        }
        let value = HeaderValue::from_bytes(h.value).ok()?;
        if name == "connection" && has_close(&value) {
            keep_alive = false;
        }
        headers.append(name, value);
    }
    let mut req = Request::new(Body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Some((req, keep_alive))
}

/// A `Connection` value that lists `close`.
fn has_close(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// How a response written here ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Fully written; the socket can take the next request.
    KeepAlive,
    /// The client went away, a write failed or timed out, or the socket
    /// must close after this response.
    Close,
}

/// Writes `res` to the socket (HTTP/1.1; a body of unknown length, the
/// event stream, chunked) while watching the socket for the client going
/// away. Bytes the client sends meanwhile are appended to `rest`.
///
/// Not an `async fn`: its future is part of every idle stream, so it holds
/// only the body and the bytes on their way out (the response's headers
/// are encoded and dropped before the first poll).
pub fn write_response<'a, I: AsyncRead + AsyncWrite + Unpin>(
    io: &'a mut I,
    res: Response<Body>,
    keep_alive: bool,
    rest: &'a mut Vec<u8>,
) -> impl Future<Output = Ended> + 'a {
    let close = !keep_alive
        || res
            .headers()
            .get_all(axum::http::header::CONNECTION)
            .iter()
            .any(has_close);
    let (parts, body) = res.into_parts();
    let length = body.size_hint().exact();
    let mut w = Writer {
        out: Pending {
            head: encode_head(&parts, length),
            ..Pending::default()
        },
        body: body.into_data_stream(),
        chunked: length.is_none(),
        body_done: false,
    };
    drop(parts);
    poll_fn(move |cx| match ready!(w.poll(cx, &mut *io, &mut *rest)) {
        Ended::KeepAlive if !close => Poll::Ready(Ended::KeepAlive),
        _ => Poll::Ready(Ended::Close),
    })
}

/// The status line and headers, as hyper writes them (lower-case names,
/// a `date`), with the framing header for `length` (chunked without one).
fn encode_head(parts: &axum::http::response::Parts, length: Option<u64>) -> Bytes {
    use axum::http::header;
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    let reason = parts.status.canonical_reason().unwrap_or("<none>");
    head.extend_from_slice(reason.as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match length {
        Some(n) => head.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if !parts.headers.contains_key(header::DATE) {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        head.extend_from_slice(format!("date: {date}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    Bytes::from(head)
}

struct Writer {
    body: axum::body::BodyDataStream,
    chunked: bool,
    out: Pending,
    body_done: bool,
}

impl Writer {
    fn poll<I: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut I,
        rest: &mut Vec<u8>,
    ) -> Poll<Ended> {
        // hyper notices a client that closed its socket while a response
        // streams: so does this. The read buffer lives on the stack only
        // for the poll: an idle stream keeps none.
        let mut scratch = [0u8; 512];
        loop {
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Pending => break,
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ended::Close),
                Poll::Ready(Ok(())) => {
                    if rest.len() + rb.filled().len() > MAX_PIPELINED {
                        return Poll::Ready(Ended::Close);
                    }
                    rest.extend_from_slice(rb.filled());
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ended::Close),
            }
        }
        loop {
            if !self.out.is_empty() {
                match ready!(self.out.poll_write(cx, io)) {
                    Ok(()) => continue,
                    Err(_) => return Poll::Ready(Ended::Close),
                }
            }
            if self.body_done {
                return match ready!(Pin::new(&mut *io).poll_flush(cx)) {
                    Ok(()) => Poll::Ready(Ended::KeepAlive),
                    Err(_) => Poll::Ready(Ended::Close),
                };
            }
            // The head goes out with the first chunk when one is ready.
            let polled = Pin::new(&mut self.body).poll_next(cx);
            match polled {
                Poll::Ready(Some(Ok(data))) if data.is_empty() => {}
                Poll::Ready(Some(Ok(data))) => self.out.set_data(data, self.chunked),
                // hyper aborts the connection when a body fails.
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Ended::Close),
                Poll::Ready(None) => {
                    self.body_done = true;
                    if self.chunked {
                        self.out.tail = b"0\r\n\r\n";
                    }
                }
                Poll::Pending if self.out.head.is_empty() => return Poll::Pending,
                // Nothing to send yet: send the head alone.
                Poll::Pending => match ready!(self.out.poll_write(cx, io)) {
                    Ok(()) => return Poll::Pending,
                    Err(_) => return Poll::Ready(Ended::Close),
                },
            }
        }
    }
}

/// Bytes on their way out, without copying the chunk: the response head
/// (first time only), the chunk-size line, the chunk, and its end.
#[derive(Default)]
struct Pending {
    head: Bytes,
    size: [u8; 18],
    size_len: usize,
    data: Bytes,
    tail: &'static [u8],
    written: usize,
}

impl Pending {
    fn set_data(&mut self, data: Bytes, chunked: bool) {
        if chunked {
            // The chunk-size line in hex, by hand: `format!` would cost an
            // allocation and the formatting machinery per write.
            let mut n = data.len();
            let mut digits = [0u8; 16];
            let mut i = digits.len();
            loop {
                i -= 1;
                digits[i] = b"0123456789abcdef"[n & 15];
                n >>= 4;
                if n == 0 {
                    break;
                }
            }
            let hex = &digits[i..];
            self.size[..hex.len()].copy_from_slice(hex);
            self.size[hex.len()..hex.len() + 2].copy_from_slice(b"\r\n");
            self.size_len = hex.len() + 2;
            self.tail = b"\r\n";
        }
        self.data = data;
    }

    fn parts(&self) -> [&[u8]; 4] {
        [
            &self.head,
            &self.size[..self.size_len],
            &self.data,
            self.tail,
        ]
    }

    fn is_empty(&self) -> bool {
        self.parts().iter().all(|p| p.is_empty())
    }

    /// Writes until all is out; then it is empty again.
    fn poll_write<I: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut I,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut skip = self.written;
            let mut slices = [IoSlice::new(&[]); 4];
            let mut n = 0;
            for part in self.parts() {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[n] = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
            }
            if n == 0 {
                *self = Pending::default();
                return Poll::Ready(Ok(()));
            }
            let wrote = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?;
            if wrote == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += wrote;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(head: &str) -> &'static str {
        match classify(head.as_bytes()) {
            Class::Undecided => "undecided",
            Class::Hyper => "hyper",
            Class::Sse { .. } => "sse",
        }
    }

    #[test]
    fn only_complete_plain_sse_requests_are_taken() {
        assert_eq!(class(""), "undecided");
        assert_eq!(class("GET /v1/ss"), "undecided");
        assert_eq!(class("GET /v1/sse"), "undecided");
        assert_eq!(
            class("GET /v1/sse?topic=a HTTP/1.1\r\nHost: x\r\n"),
            "undecided"
        );
        assert_eq!(
            class("GET /v1/sse?topic=a HTTP/1.1\r\nHost: x\r\n\r\n"),
            "sse"
        );
        assert_eq!(class("GET /v1/sse HTTP/1.1\r\n\r\n"), "sse");
        assert_eq!(class("POST /v1/events HTTP/1.1\r\n"), "hyper");
        assert_eq!(class("GET /v1/ssex HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(class("GET /v1/ws HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(class("HEAD /v1/sse HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(class("GET /v1/sse HTTP/1.0\r\n\r\n"), "hyper");
        // hyper answers these as it always did (400, 431, 100-continue).
        assert_eq!(class("GET /v1/sse?topic=a.> HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(class("GET /v1/sse HTTP/1.1\r\nbad header\r\n\r\n"), "hyper");
        assert_eq!(
            class("GET /v1/sse HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            "hyper"
        );
        assert_eq!(
            class("GET /v1/sse HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            "sse"
        );
        assert_eq!(
            class("GET /v1/sse HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "hyper"
        );
        assert_eq!(
            class("GET /v1/sse HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"),
            "hyper"
        );
        let many = "x: y\r\n".repeat(MAX_HEADERS + 1);
        assert_eq!(
            class(&format!("GET /v1/sse HTTP/1.1\r\n{many}\r\n")),
            "hyper"
        );
        let long = "a".repeat(MAX_HEAD);
        assert_eq!(class(&format!("GET /v1/sse?t={long}")), "hyper");
    }

    #[test]
    fn chunk_size_lines_are_lower_case_hex() {
        for (len, line) in [(1, "1\r\n"), (255, "ff\r\n"), (4096, "1000\r\n")] {
            let mut p = Pending::default();
            p.set_data(Bytes::from(vec![b'x'; len]), true);
            assert_eq!(&p.size[..p.size_len], line.as_bytes());
            assert_eq!(p.tail, b"\r\n");
        }
    }

    #[test]
    fn connection_close_is_seen_among_other_tokens() {
        let head = "GET /v1/sse HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n";
        let Class::Sse { keep_alive, .. } = classify(head.as_bytes()) else {
            panic!("not taken");
        };
        assert!(!keep_alive);
    }
}
