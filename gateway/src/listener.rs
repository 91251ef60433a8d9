//! The TCP listener: every accepted socket gets the settings that let the
//! gateway notice a client that vanished without closing.
//!
//! - TCP keepalive probes an idle peer.
//! - `TCP_USER_TIMEOUT` aborts a socket whose sent data stays unacknowledged.
//! - A write timeout drops a peer that is alive but stopped reading.

use axum::serve::Listener;
use socket2::{SockRef, TcpKeepalive};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;

/// Accept-queue length. tokio's default of 128 drops SYNs when thousands of
/// clients reconnect at once (a gateway restart, a network blip); they then
/// retry only after 1 s and 3 s. The kernel caps it at `net.core.somaxconn`.
pub const BACKLOG: u32 = 4096;

/// Binds the gateway's listening socket with a deep accept queue.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

pub struct GatewayListener {
    inner: TcpListener,
    write_timeout: Duration,
}

impl GatewayListener {
    pub fn new(inner: TcpListener, write_timeout: Duration) -> GatewayListener {
        GatewayListener {
            inner,
            write_timeout,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn configure(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let sock = SockRef::from(stream);
        let idle = self.write_timeout.max(Duration::from_secs(1));
        sock.set_tcp_keepalive(
            &TcpKeepalive::new()
                .with_time(idle)
                .with_interval(Duration::from_secs(5))
                .with_retries(3),
        )?;
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
        sock.set_tcp_user_timeout(Some(self.write_timeout))?;
        Ok(())
    }
}

impl Listener for GatewayListener {
    type Io = Pin<Box<TimeoutStream<TcpStream>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = self.configure(&stream) {
                        tracing::debug!(%addr, error = %e, "could not configure socket");
                    }
                    let mut io = TimeoutStream::new(stream);
                    io.set_write_timeout(Some(self.write_timeout));
                    return (Box::pin(io), addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The peer's address, for per-address limits. Handlers read it through
/// `ConnectInfo<ClientAddr>`, which the server loop (`serve.rs`) puts on
/// every request; it is absent when the router is served some other way,
/// and then no per-address limit applies.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);
