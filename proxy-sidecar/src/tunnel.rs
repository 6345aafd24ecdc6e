//! Byte relay for CONNECT tunnels: both directions at once, half-close passed through
//! (EOF on one side becomes a write shutdown on the other while the opposite direction
//! keeps flowing), an idle timeout, and an abort signal for the end of a graceful drain.
//!
//! When both ends are kernel sockets (the usual case), bytes move with `splice(2)`
//! through a pipe and never enter user space; otherwise a buffered copy loop
//! (≥ 16 KiB buffers) is used.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Both sides closed.
    Closed,
    /// One side failed (reset, broken pipe).
    Error,
    Idle,
    Aborted,
}

/// Byte counts of a tunnel, updated while it runs.
#[derive(Debug, Default)]
pub struct TunnelBytes {
    /// Client → upstream.
    pub out: AtomicU64,
    /// Upstream → client.
    pub inbound: AtomicU64,
}

struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Relay settings.
#[derive(Clone)]
pub struct RelayOptions {
    pub buf_size: usize,
    pub idle_timeout: Duration,
    pub abort: CancellationToken,
    pub metric_out: Counter,
    pub metric_in: Counter,
}

struct Progress<'a> {
    count: &'a AtomicU64,
    metric: &'a Counter,
    activity: &'a Activity,
}

impl Progress<'_> {
    fn add(&self, n: usize) {
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        self.metric.inc_by(n as u64);
        self.activity.touch();
    }
}

async fn pipe<R, W>(mut r: R, mut w: W, buf_size: usize, p: Progress<'_>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buf_size];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            // Half-close: pass the EOF on, keep the other direction running.
            w.shutdown().await?;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        p.add(n);
    }
}

/// Run both directions until they end, one fails, the tunnel idles out, or `abort`
/// fires.
async fn drive<U, D>(up: U, down: D, opts: &RelayOptions, activity: &Activity) -> TunnelEnd
where
    U: Future<Output = std::io::Result<()>>,
    D: Future<Output = std::io::Result<()>>,
{
    let both = async { tokio::try_join!(up, down) };
    let idle = async {
        loop {
            let left = opts.idle_timeout.saturating_sub(activity.idle_for());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left).await;
        }
    };
    tokio::select! {
        r = both => if r.is_ok() { TunnelEnd::Closed } else { TunnelEnd::Error },
        _ = idle => TunnelEnd::Idle,
        _ = opts.abort.cancelled() => TunnelEnd::Aborted,
    }
}

/// Relay between arbitrary client halves and upstream halves with buffered copies.
pub async fn relay<CR, CW, UR, UW>(
    client: (CR, CW),
    upstream: (UR, UW),
    opts: RelayOptions,
    bytes: Arc<TunnelBytes>,
) -> TunnelEnd
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let (cr, cw) = client;
    let (ur, uw) = upstream;
    let up = pipe(
        cr,
        uw,
        opts.buf_size,
        Progress {
            count: &bytes.out,
            metric: &opts.metric_out,
            activity: &activity,
        },
    );
    let down = pipe(
        ur,
        cw,
        opts.buf_size,
        Progress {
            count: &bytes.inbound,
            metric: &opts.metric_in,
            activity: &activity,
        },
    );
    drive(up, down, &opts, &activity).await
}

#[cfg(target_os = "linux")]
pub use splice::{relay_sockets, SpliceSocket};

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // pipe2/splice/fcntl(F_SETPIPE_SZ): no safe wrapper in the tree
mod splice {
    //! Zero-copy relay with `splice(2)`: socket → pipe → socket.

    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::Arc;

    use tokio::io::{Interest, Ready};
    use tokio::net::{TcpStream, UnixStream};

    use super::{drive, Activity, Progress, RelayOptions, TunnelBytes, TunnelEnd};

    /// A tokio socket usable with `splice`.
    pub trait SpliceSocket: AsRawFd + Send + Sync {
        fn ready(
            &self,
            interest: Interest,
        ) -> impl std::future::Future<Output = io::Result<Ready>> + Send;
        fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>)
            -> io::Result<R>;
    }

    impl SpliceSocket for TcpStream {
        fn ready(
            &self,
            interest: Interest,
        ) -> impl std::future::Future<Output = io::Result<Ready>> + Send {
            TcpStream::ready(self, interest)
        }
        fn try_io<R>(
            &self,
            interest: Interest,
            f: impl FnOnce() -> io::Result<R>,
        ) -> io::Result<R> {
            TcpStream::try_io(self, interest, f)
        }
    }

    impl SpliceSocket for UnixStream {
        fn ready(
            &self,
            interest: Interest,
        ) -> impl std::future::Future<Output = io::Result<Ready>> + Send {
            UnixStream::ready(self, interest)
        }
        fn try_io<R>(
            &self,
            interest: Interest,
            f: impl FnOnce() -> io::Result<R>,
        ) -> io::Result<R> {
            UnixStream::try_io(self, interest, f)
        }
    }

    struct Pipe {
        r: OwnedFd,
        w: OwnedFd,
        size: usize,
    }

    impl Pipe {
        fn new(size: usize) -> io::Result<Pipe> {
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
            let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: pipe2 succeeded, both descriptors are new and owned by us.
            let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            // A larger pipe moves more per call; the kernel may cap it (pipe-max-size).
            // SAFETY: fcntl on a descriptor we own.
            let got =
                unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
            let size = if got > 0 { got as usize } else { 65536 };
            Ok(Pipe { r, w, size })
        }
    }

    fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: plain descriptors, no offsets (null), non-blocking flag set.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn shutdown_write(fd: RawFd) {
        // SAFETY: shutdown on a socket descriptor we hold a reference to.
        unsafe {
            libc::shutdown(fd, libc::SHUT_WR);
        }
    }

    async fn direction<S: SpliceSocket, D: SpliceSocket>(
        src: &S,
        dst: &D,
        pipe: &Pipe,
        p: Progress<'_>,
    ) -> io::Result<()> {
        loop {
            let n = loop {
                src.ready(Interest::READABLE).await?;
                match src.try_io(Interest::READABLE, || {
                    splice(src.as_raw_fd(), pipe.w.as_raw_fd(), pipe.size)
                }) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                shutdown_write(dst.as_raw_fd());
                return Ok(());
            }
            let mut left = n;
            while left > 0 {
                dst.ready(Interest::WRITABLE).await?;
                match dst.try_io(Interest::WRITABLE, || {
                    splice(pipe.r.as_raw_fd(), dst.as_raw_fd(), left)
                }) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(m) => left -= m,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
            p.add(n);
        }
    }

    /// Relay between two sockets with `splice`. Falls back to nothing: the caller
    /// uses [`super::relay`] when pipes cannot be created (returned as `Err`).
    pub async fn relay_sockets<C: SpliceSocket, U: SpliceSocket>(
        client: &C,
        upstream: &U,
        opts: RelayOptions,
        bytes: Arc<TunnelBytes>,
    ) -> io::Result<TunnelEnd> {
        let up_pipe = Pipe::new(opts.buf_size)?;
        let down_pipe = Pipe::new(opts.buf_size)?;
        let activity = Activity::new();
        let up = direction(
            client,
            upstream,
            &up_pipe,
            Progress {
                count: &bytes.out,
                metric: &opts.metric_out,
                activity: &activity,
            },
        );
        let down = direction(
            upstream,
            client,
            &down_pipe,
            Progress {
                count: &bytes.inbound,
                metric: &opts.metric_in,
                activity: &activity,
            },
        );
        Ok(drive(up, down, &opts, &activity).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(idle: Duration) -> RelayOptions {
        RelayOptions {
            buf_size: 16 * 1024,
            idle_timeout: idle,
            abort: CancellationToken::new(),
            metric_out: Counter::default(),
            metric_in: Counter::default(),
        }
    }

    #[tokio::test]
    async fn copy_relay_passes_half_close_and_counts() {
        let (mut client, client_side) = tokio::io::duplex(1 << 16);
        let (upstream_side, mut upstream) = tokio::io::duplex(1 << 16);
        let bytes = Arc::new(TunnelBytes::default());
        let task = tokio::spawn(relay(
            tokio::io::split(client_side),
            tokio::io::split(upstream_side),
            opts(Duration::from_secs(5)),
            bytes.clone(),
        ));
        let server = tokio::spawn(async move {
            let mut got = Vec::new();
            upstream.read_to_end(&mut got).await.unwrap();
            upstream.write_all(b"reply after EOF").await.unwrap();
            upstream.shutdown().await.unwrap();
            got
        });
        client.write_all(&[1u8; 100_000]).await.unwrap();
        client.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"reply after EOF");
        assert_eq!(server.await.unwrap().len(), 100_000);
        assert_eq!(task.await.unwrap(), TunnelEnd::Closed);
        assert_eq!(bytes.out.load(Ordering::Relaxed), 100_000);
        assert_eq!(bytes.inbound.load(Ordering::Relaxed), 15);
    }

    #[tokio::test]
    async fn copy_relay_idles_out_and_aborts() {
        let (_client, client_side) = tokio::io::duplex(1024);
        let (upstream_side, _upstream) = tokio::io::duplex(1024);
        let end = relay(
            tokio::io::split(client_side),
            tokio::io::split(upstream_side),
            opts(Duration::from_millis(50)),
            Arc::default(),
        )
        .await;
        assert_eq!(end, TunnelEnd::Idle);
        let (_c, client_side) = tokio::io::duplex(1024);
        let (upstream_side, _u) = tokio::io::duplex(1024);
        let o = opts(Duration::from_secs(60));
        o.abort.cancel();
        let end = relay(
            tokio::io::split(client_side),
            tokio::io::split(upstream_side),
            o,
            Arc::default(),
        )
        .await;
        assert_eq!(end, TunnelEnd::Aborted);
    }
}
