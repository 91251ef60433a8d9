//! The HTTP server loop: accepts sockets, serves each with hyper's HTTP/1
//! connection, and shuts down without dropping requests already sent.
//!
//! The gateway drives hyper itself, rather than through `axum::serve`, for
//! three things that `axum::serve` does not expose:
//!
//! - a header-read timeout, so a client that sends half a request line and
//!   stops (slowloris) holds its socket for a bounded time;
//! - a cap on sockets with no request in progress (the [`IdlePool`]): when
//!   it is full the oldest such socket is closed, so half-open requests can
//!   never exhaust file descriptors and a real request still gets in;
//! - a shutdown that keeps answering for a moment (`503 shutting_down`,
//!   `Connection: close`) instead of closing sockets a request was just
//!   written to.

use crate::listener::{ClientAddr, GatewayListener};
use crate::rewind::Rewind;
use crate::sse_socket::{self, Ended, Head};
use crate::state::Shared;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// After the shutdown signal, how long the gateway still accepts sockets and
/// answers requests (publishes get `503 shutting_down`, every response says
/// `Connection: close`). A request a client wrote just before or just after
/// the signal gets an answer instead of a reset.
pub const SHUTDOWN_LINGER: Duration = Duration::from_millis(500);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lingers,
/// closes every connection gracefully and waits for them, at most until the
/// shutdown timeout has passed since the signal.
pub async fn run(
    shared: Arc<Shared>,
    mut listener: GatewayListener,
    router: Router,
    shutdown: CancellationToken,
) {
    let config = &shared.config;
    let server = Server {
        shared: shared.clone(),
        router,
        pool: Arc::new(IdlePool::new(config.max_idle_connections)),
        tracker: TaskTracker::new(),
        closing: CancellationToken::new(),
        header_timeout: config.header_timeout,
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            (io, addr) = listener.accept() => {
                if let Some(old) = server.spawn(io, addr) {
                    // Wait until the evicted socket is closed before taking
                    // the next one, so that sockets without a request never
                    // outnumber the cap by more than one, however fast they
                    // arrive. (Bounded, in case its task is slow to run.)
                    let _ = tokio::time::timeout(Duration::from_secs(1), old.gone.cancelled()).await;
                }
            }
        }
    }
    let deadline = Instant::now() + config.shutdown_timeout;
    let linger = Instant::now() + SHUTDOWN_LINGER.min(config.shutdown_timeout);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(linger) => break,
            (io, addr) = listener.accept() => {
                server.spawn(io, addr);
            }
        }
    }
    // Sockets the kernel already completed would be reset when the listener
    // closes: take them too. (A zero timeout still polls `accept` once.)
    while let Ok((io, addr)) = tokio::time::timeout(Duration::ZERO, listener.accept()).await {
        server.spawn(io, addr);
    }
    drop(listener);
    server.closing.cancel();
    server.tracker.close();
    if tokio::time::timeout_at(deadline, server.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout reached with connections still open");
        return;
    }
    // Upgraded WebSockets are not tracked by the HTTP server: wait until
    // every streaming connection has let go of its socket (its permit).
    while shared.limit.in_use() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Server {
    shared: Arc<Shared>,
    router: Router,
    pool: Arc<IdlePool>,
    tracker: TaskTracker,
    /// Cancelled when connections must finish their request and close.
    closing: CancellationToken,
    header_timeout: Duration,
}

impl Server {
    /// Serves one socket; returns the socket it evicted to make room, if any.
    fn spawn(
        &self,
        io: <GatewayListener as Listener>::Io,
        addr: SocketAddr,
    ) -> Option<Arc<Member>> {
        let (member, evicted) = self.pool.admit();
        let exchange = Exchange {
            router: self.router.clone(),
            pool: self.pool.clone(),
            member,
            shared: self.shared.clone(),
            addr,
        };
        let closing = self.closing.clone();
        let header_timeout = self.header_timeout;
        // Each phase is boxed: the task lives as long as its socket, and
        // holds only what the current phase needs (an idle SSE stream, the
        // writer alone; it was ~1.2 KiB with every phase inline).
        self.tracker.spawn(async move {
            let mut io = io;
            let mut buf = Vec::new();
            let head = Box::pin(first_head(
                &mut io,
                &mut buf,
                &exchange.member,
                &closing,
                header_timeout,
            ))
            .await;
            let rest = match head {
                Head::Hyper => Some(buf),
                Head::Closed => None,
                Head::Sse { req, keep_alive } => {
                    // The head's buffer is not kept for the stream's life.
                    buf.shrink_to_fit();
                    let res = Box::pin(exchange.clone().respond(req)).await;
                    let ended =
                        sse_socket::write_response(&mut io, res, keep_alive, &mut buf).await;
                    (ended == Ended::KeepAlive).then_some(buf)
                }
            };
            if let Some(rest) = rest {
                let io = Rewind::new(rest, io);
                Box::pin(serve_hyper(io, exchange.clone(), &closing, header_timeout)).await;
            }
            exchange.pool.leave(&exchange.member);
            exchange.member.gone.cancel();
            // Like axum::serve's: what a trace-level log shows per socket.
            tracing::trace!(addr = %exchange.addr, "connection closed");
        });
        evicted
    }
}

/// Reads a socket's first request head: `GET /v1/sse` is served off hyper
/// (see sse_socket.rs), anything else goes to hyper with the bytes read so
/// far. The same bounds as hyper's apply: the header-read timeout,
/// eviction, shutdown. A head is handed to hyper unfinished only when
/// hyper refuses it at once (see `sse_socket::MAX_HEAD`), so hyper's own
/// header-read timeout never starts over on it.
async fn first_head<I: tokio::io::AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut Vec<u8>,
    member: &Member,
    closing: &CancellationToken,
    header_timeout: Duration,
) -> Head {
    tokio::select! {
        head = tokio::time::timeout(header_timeout, sse_socket::read_head(io, buf)) => {
            head.unwrap_or(Head::Closed)
        }
        _ = member.evicted.cancelled() => Head::Closed,
        _ = closing.cancelled() => Head::Hyper,
    }
}

/// Serves a socket with hyper's HTTP/1 connection until it closes, is
/// evicted while idle, or the server closes.
async fn serve_hyper(
    io: Rewind<<GatewayListener as Listener>::Io>,
    exchange: Exchange,
    closing: &CancellationToken,
    header_timeout: Duration,
) {
    let (member, addr) = (exchange.member.clone(), exchange.addr);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let exchange = exchange.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                exchange.respond(req.map(axum::body::Body::new)).await,
            )
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let mut conn = std::pin::pin!(
        http.serve_connection(TokioIo::new(io), service)
            .with_upgrades()
    );
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(%addr, error = %e, "connection failed");
            }
        }
        _ = member.evicted.cancelled() => {
            tracing::trace!(%addr, "idle connection evicted");
            // A socket that never finished a request is dropped at
            // once; a keep-alive one is closed between requests.
            if member.served.load(Ordering::Acquire) {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(header_timeout, conn.as_mut()).await;
            }
        }
        _ = closing.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}

/// What answers a socket's requests, whichever way they were read (hyper,
/// or sse_socket.rs): the router, with the bookkeeping of the server loop.
#[derive(Clone)]
struct Exchange {
    router: Router,
    pool: Arc<IdlePool>,
    member: Arc<Member>,
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Exchange {
    async fn respond(self, mut req: Request<axum::body::Body>) -> Response<axum::body::Body> {
        req.extensions_mut()
            .insert(ConnectInfo(ClientAddr(self.addr)));
        let busy = Busy::begin(&self.pool, &self.member);
        let mut res = self
            .router
            .oneshot(req)
            .await
            .unwrap_or_else(|never| match never {});
        busy.end(is_stream(&res));
        if self.shared.shutdown.is_cancelled() && res.status() != StatusCode::SWITCHING_PROTOCOLS {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}

/// An SSE response: its connection streams for hours and is counted by
/// `--max-connections`, so it leaves the idle pool for good.
fn is_stream<B>(res: &Response<B>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// Sockets with no request in progress: ones still sending their first
/// request head, and keep-alive ones between requests. At most `cap`; when
/// a new socket would exceed it, the one that has waited longest is closed.
///
/// Streaming connections are not members: they are capped by
/// `--max-connections`. Sockets in a request are bounded by the request's
/// own limits (body timeout, body buffer budget).
pub struct IdlePool {
    cap: usize,
    inner: Mutex<PoolInner>,
    evictions: AtomicU64,
}

#[derive(Default)]
struct PoolInner {
    next: u64,
    /// By admission order: the first is the longest waiting.
    members: BTreeMap<u64, Arc<Member>>,
}

/// One socket's standing in the pool.
pub struct Member {
    /// Its key in `members` while it is idle.
    key: AtomicU64,
    /// Requests in progress (more than one only with pipelining).
    busy: AtomicUsize,
    /// It has completed at least one request.
    served: AtomicBool,
    /// It turned into a stream and never comes back.
    streaming: AtomicBool,
    evicted: CancellationToken,
    /// Cancelled once its socket is closed.
    gone: CancellationToken,
}

impl IdlePool {
    pub fn new(cap: usize) -> IdlePool {
        IdlePool {
            cap: cap.max(1),
            inner: Mutex::new(PoolInner::default()),
            evictions: AtomicU64::new(0),
        }
    }

    /// Registers a new socket, closing the longest-waiting one if full;
    /// returns that one too.
    pub fn admit(&self) -> (Arc<Member>, Option<Arc<Member>>) {
        let member = Arc::new(Member {
            key: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            streaming: AtomicBool::new(false),
            evicted: CancellationToken::new(),
            gone: CancellationToken::new(),
        });
        let evicted = self.insert(&member);
        (member, evicted)
    }

    fn insert(&self, member: &Arc<Member>) -> Option<Arc<Member>> {
        let evicted = {
            let mut inner = self.inner.lock();
            inner.next += 1;
            let key = inner.next;
            member.key.store(key, Ordering::Release);
            inner.members.insert(key, member.clone());
            if inner.members.len() > self.cap {
                inner.members.pop_first().map(|(_, m)| m)
            } else {
                None
            }
        };
        if let Some(old) = &evicted {
            self.evictions.fetch_add(1, Ordering::Relaxed);
            old.evicted.cancel();
        }
        evicted
    }

    fn remove(&self, member: &Member) {
        let key = member.key.load(Ordering::Acquire);
        let mut inner = self.inner.lock();
        if inner
            .members
            .get(&key)
            .is_some_and(|m| std::ptr::eq(Arc::as_ptr(m), member))
        {
            inner.members.remove(&key);
        }
    }

    /// The socket is gone.
    pub fn leave(&self, member: &Member) {
        self.remove(member);
    }

    /// Sockets in the pool now.
    pub fn len(&self) -> usize {
        self.inner.lock().members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sockets closed to make room, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// A request in progress on a pool member; ending it (or dropping it, if
/// the request was abandoned) puts the socket back among the idle ones.
struct Busy {
    pool: Arc<IdlePool>,
    member: Arc<Member>,
    stream: bool,
}

impl Busy {
    fn begin(pool: &Arc<IdlePool>, member: &Arc<Member>) -> Busy {
        if member.busy.fetch_add(1, Ordering::AcqRel) == 0 {
            pool.remove(member);
        }
        Busy {
            pool: pool.clone(),
            member: member.clone(),
            stream: false,
        }
    }

    fn end(mut self, stream: bool) {
        self.stream = stream;
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let m = &self.member;
        m.served.store(true, Ordering::Release);
        if self.stream {
            m.streaming.store(true, Ordering::Release);
        }
        if m.busy.fetch_sub(1, Ordering::AcqRel) == 1
            && !m.streaming.load(Ordering::Acquire)
            && !m.evicted.is_cancelled()
        {
            self.pool.insert(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_closes_the_longest_waiting_socket() {
        let pool = Arc::new(IdlePool::new(2));
        let (a, _) = pool.admit();
        let (b, _) = pool.admit();
        // `a` starts a request: it is no longer idle, so it is safe.
        let busy = Busy::begin(&pool, &a);
        let (c, _) = pool.admit();
        assert!(!a.evicted.is_cancelled() && !b.evicted.is_cancelled());
        let (d, _) = pool.admit();
        assert!(b.evicted.is_cancelled(), "the oldest idle socket goes");
        assert!(!c.evicted.is_cancelled() && !d.evicted.is_cancelled());
        // `a` finishes: back in the pool as the newest, and `c` makes room.
        drop(busy);
        assert!(c.evicted.is_cancelled());
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.evictions(), 2);
    }

    #[test]
    fn streams_leave_the_pool_for_good() {
        let pool = Arc::new(IdlePool::new(1));
        let (a, _) = pool.admit();
        Busy::begin(&pool, &a).end(true);
        assert!(pool.is_empty());
        let (b, _) = pool.admit();
        let _c = pool.admit();
        assert!(!a.evicted.is_cancelled(), "a stream is never evicted");
        assert!(b.evicted.is_cancelled());
    }
}
