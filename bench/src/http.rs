//! Just enough HTTP/1.1 for the bench: requests over a raw `TcpStream`, a
//! response head reader, and a streaming chunked-body decoder.
//!
//! Hand-written so that ten thousand SSE subscribers cost the load
//! generator a socket and a few KiB each, and nothing else.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest response head the bench accepts.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<usize>,
}

/// Reads a response head into `buf` (which may already hold bytes); on
/// return `buf` holds only what followed the head.
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, String> {
    loop {
        if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
            let head = parse_head(&buf[..end])?;
            buf.drain(..end + 4);
            return Ok(head);
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too long".into());
        }
        let mut chunk = [0u8; 4096];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut h = Head {
        status,
        chunked: false,
        content_length: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            h.content_length = value.parse().ok();
        }
    }
    Ok(h)
}

/// Streaming decoder for `transfer-encoding: chunked`.
#[derive(Debug, Default)]
pub struct Dechunk {
    state: ChunkState,
    size: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    /// A chunk extension, skipped up to the LF.
    Ext,
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last (empty) chunk: trailers up to an empty line.
    Trailer,
    TrailerLine,
    Done,
}

impl Dechunk {
    /// Decodes `input`, appending body bytes to `out`. Returns true once the
    /// final chunk has been read.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
        use ChunkState::*;
        while !input.is_empty() {
            match self.state {
                Size => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let d = (b as char).to_digit(16).expect("hex") as usize;
                            self.size = self
                                .size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(d))
                                .ok_or("chunk size overflows")?;
                        }
                        b'\r' | b';' | b' ' | b'\t' => self.state = Ext,
                        b'\n' => self.end_size_line(),
                        _ => return Err(format!("bad byte {b:#x} in a chunk size")),
                    }
                }
                Ext => {
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\n' {
                        self.end_size_line();
                    }
                }
                Data => {
                    let n = self.size.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.size -= n;
                    if self.size == 0 {
                        self.state = DataEnd;
                    }
                }
                DataEnd => {
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\n' {
                        self.state = Size;
                    } else if b != b'\r' {
                        return Err("missing CRLF after a chunk".into());
                    }
                }
                Trailer => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'\r' => {}
                        b'\n' => self.state = Done,
                        _ => self.state = TrailerLine,
                    }
                }
                TrailerLine => {
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\n' {
                        self.state = Trailer;
                    }
                }
                Done => return Ok(true),
            }
        }
        Ok(self.state == Done)
    }

    fn end_size_line(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Trailer
        } else {
            ChunkState::Data
        };
    }
}

/// `GET path` on a fresh connection; returns the body of a 200 response.
pub async fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let work = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let head = read_head(&mut s, &mut buf).await?;
        let body = read_body(&mut s, &head, buf).await?;
        if head.status != 200 {
            return Err(format!("GET {path}: status {}", head.status));
        }
        String::from_utf8(body).map_err(|_| "body is not UTF-8".to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| format!("GET {path} timed out"))?
}

/// Reads a whole response body (content-length, chunked, or up to EOF).
async fn read_body(s: &mut TcpStream, head: &Head, mut buf: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut chunk = vec![0u8; 16 * 1024];
    if head.chunked {
        let mut dechunk = Dechunk::default();
        let mut out = Vec::new();
        let mut done = dechunk.feed(&buf, &mut out)?;
        while !done {
            let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed inside a chunked body".into());
            }
            done = dechunk.feed(&chunk[..n], &mut out)?;
        }
        return Ok(out);
    }
    match head.content_length {
        Some(len) => {
            while buf.len() < len {
                let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("connection closed inside a body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.truncate(len);
            Ok(buf)
        }
        None => {
            s.read_to_end(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            Ok(buf)
        }
    }
}

/// One keep-alive connection for publishing.
pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    req: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).ok();
        Ok(Conn {
            stream,
            addr,
            req: Vec::with_capacity(16 * 1024),
        })
    }

    /// `POST path` with a JSON body; returns the status and body.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.send("POST", path, body).await
    }

    /// A request with a JSON body; returns the status and body.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        self.req.clear();
        self.req.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                self.addr,
                body.len()
            )
            .as_bytes(),
        );
        self.req.extend_from_slice(body);
        self.stream
            .write_all(&self.req)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let head = read_head(&mut self.stream, &mut buf).await?;
        if head.content_length.is_none() && !head.chunked {
            return Err("a keep-alive response needs a length".into());
        }
        let body = read_body(&mut self.stream, &head, buf).await?;
        Ok((head.status, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_across_arbitrary_splits() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Dechunk::default();
            let mut out = Vec::new();
            let a = d.feed(&wire[..split], &mut out).unwrap();
            let b = d.feed(&wire[split..], &mut out).unwrap();
            assert!(b || a, "split {split}");
            assert_eq!(out, b"hello 0123456789", "split {split}");
        }
    }

    #[test]
    fn head_is_parsed() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-type: x")
            .unwrap();
        assert_eq!(h.status, 200);
        assert!(h.chunked);
    }
}
