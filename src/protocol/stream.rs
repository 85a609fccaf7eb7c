//! A socket that may have been upgraded to TLS, on either side of the gateway.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Plain TCP, TLS accepted from a client, or TLS to the upstream.
pub enum Stream {
    Plain(TcpStream),
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// Has the peer of an idle connection closed it or sent something unasked (a server
    /// that ends a session sends a FATAL error, then closes)? Looks without reading or
    /// blocking, so a connection that passes is untouched.
    pub fn idle_peer_gone(&self) -> bool {
        let tcp = match self {
            Stream::Plain(s) => s,
            Stream::ServerTls(s) => s.get_ref().0,
            Stream::ClientTls(s) => s.get_ref().0,
        };
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(tcp)
            .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        {
            // End of stream, or bytes nobody asked for.
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        }
    }

    /// Moves a plain socket's readiness registration to the runtime of the calling task.
    ///
    /// A socket delivers its events through the reactor of the runtime it was registered
    /// with. A pooled upstream connection opened by a session on one session thread and
    /// reused by a session on another would otherwise wake the second thread through the
    /// first one for every statement. TLS streams cannot be taken apart and rebuilt, so they
    /// are returned as they are (and keep working through their original reactor).
    /// Must be called inside a tokio runtime.
    pub fn rehome(self) -> io::Result<Stream> {
        match self {
            Stream::Plain(s) => Ok(Stream::Plain(TcpStream::from_std(s.into_std()?)?)),
            other => Ok(other),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::ServerTls(s) => s.is_write_vectored(),
            Stream::ClientTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fresh single-threaded runtime, like a session thread's.
    pub(crate) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Connects on a runtime that is then shut down, so its reactor is gone.
    fn orphaned_stream() -> (Stream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let old = runtime();
        let stream = old.block_on(async { TcpStream::connect(addr).await.unwrap() });
        let (peer, _) = listener.accept().unwrap();
        drop(old);
        (Stream::Plain(stream), peer)
    }

    #[test]
    fn a_rehomed_socket_works_after_its_first_runtime_is_gone() {
        let (stream, mut peer) = orphaned_stream();
        let new = runtime();
        new.block_on(async {
            let mut stream = stream.rehome().unwrap();
            stream.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            std::io::Read::read_exact(&mut peer, &mut got).unwrap();
            assert_eq!(&got, b"ping");
            std::io::Write::write_all(&mut peer, b"pong").unwrap();
            let mut back = [0u8; 4];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"pong");
        });
    }

    #[test]
    fn without_rehoming_the_dead_reactor_fails_the_io() {
        // The failure the rehoming avoids: the socket is still tied to the old reactor.
        let (mut stream, _peer) = orphaned_stream();
        let new = runtime();
        let r = new.block_on(async {
            let mut b = [0u8; 1];
            stream.read(&mut b).await
        });
        assert!(r.is_err(), "expected an error, got {r:?}");
    }
}
