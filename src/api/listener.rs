//! Serving connections so that hostile clients cannot take the server down: each connection has
//! time limits, their number is capped without ever stopping the listener, and the open-file
//! limit is raised at start.
//!
//! - **Header timeout**: a connection that has not sent a complete request head within
//!   `HEADER_READ_TIMEOUT` of opening (or of its previous answer, see below) is closed. This
//!   also covers a client that sends nothing at all.
//! - **Body timeout**: once the head is in, the whole body must arrive within
//!   `BODY_READ_TIMEOUT`; a body that takes longer fails to read (408) and the connection
//!   closes.
//! - **Idle keep-alive**: a kept-alive connection on which nothing arrives is closed after
//!   `KEEP_ALIVE_TIMEOUT`; once the next request's first byte arrives, its head has
//!   `HEADER_READ_TIMEOUT`.
//! - **Connection cap**: at `MAX_CONNECTIONS`, a new connection closes the one that has been
//!   idle longest (no request in flight: idle keep-alives, and clients still dribbling their
//!   headers), or, if every connection is busy, is closed itself at once. The listener accepts
//!   all the time, so the kernel's queue never fills and a client is answered or refused
//!   quickly; when the process runs out of file descriptors it sheds an idle connection and
//!   goes on accepting, instead of sleeping a second as axum's `serve` does.
//!
//! [`raise_open_file_limit`] lifts the soft open-file limit to the hard one (a common soft
//! default is 1,024), and [`ConnectionLimits::fit_open_files`] keeps the cap under it.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};

use crate::settings::Settings;

/// Descriptors kept free for everything but client connections: the database pool, key and
/// log files, the metrics listener.
const RESERVED_FILES: u64 = 128;

/// Time limits and the cap on connections; see the module doc. `Default` is the settings'
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has to send a request head (`HEADER_READ_TIMEOUT`).
    pub header_read_timeout: Duration,
    /// How long a client has to send a body once its head is in (`BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
    /// How long an idle kept-alive connection stays open (`KEEP_ALIVE_TIMEOUT`).
    pub keep_alive_timeout: Duration,
    /// The most connections open at once (`MAX_CONNECTIONS`).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::from(&Settings::default())
    }
}

impl From<&Settings> for ConnectionLimits {
    fn from(settings: &Settings) -> Self {
        Self {
            header_read_timeout: settings.header_read_timeout,
            body_read_timeout: settings.body_read_timeout,
            keep_alive_timeout: settings.keep_alive_timeout,
            max_connections: usize::try_from(settings.max_connections).unwrap_or(usize::MAX),
        }
    }
}

impl ConnectionLimits {
    /// The cap lowered, if need be, to fit `open_files` descriptors with room for the rest
    /// of the process; logs when it lowers it.
    pub fn fit_open_files(mut self, open_files: u64) -> Self {
        let room =
            usize::try_from(open_files.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX);
        if self.max_connections > room {
            tracing::warn!(
                max_connections = self.max_connections,
                open_files,
                "MAX_CONNECTIONS lowered to {room} to fit the open-file limit"
            );
            self.max_connections = room;
        }
        self
    }
}

/// Raises the soft limit on open files to the hard limit and returns the limit now in force
/// (`None` where it cannot be read). Each connection holds a descriptor: with the common soft
/// limit of 1,024, a thousand idle sockets would otherwise stop `accept`.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => limit = raised,
                Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
            }
        }
        // `None` is unlimited.
        Some(limit.current.unwrap_or(u64::MAX))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// What the server and a connection's task know of one connection.
struct Connection {
    /// Requests being answered now.
    in_flight: AtomicUsize,
    /// Whether it has answered a request (then the keep-alive limit applies, not the header's).
    served: AtomicBool,
    /// When it last became idle: opened, or answered its last request in flight.
    idle_since: Mutex<Instant>,
    /// When the first byte since it became idle arrived (the next request's head started).
    reading_since: Mutex<Option<Instant>>,
    /// Asked to close to make room.
    shed: Notify,
    is_shed: AtomicBool,
}

impl Connection {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            reading_since: Mutex::new(None),
            shed: Notify::new(),
            is_shed: AtomicBool::new(false),
        }
    }

    fn idle_since(&self) -> Instant {
        self.idle_since
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now())
    }

    /// When it is closed, if no request is in flight: the header timeout from its start, or
    /// from the first byte of a later request's head; the keep-alive timeout from its last
    /// answer while nothing arrives.
    fn idle_deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Acquire) {
            return Some(self.idle_since() + limits.header_read_timeout);
        }
        let reading = self.reading_since.lock().ok().and_then(|since| *since);
        Some(match reading {
            Some(since) => since + limits.header_read_timeout,
            None => self.idle_since() + limits.keep_alive_timeout,
        })
    }

    /// When the watchdog should look again, at `now`: at the deadline, and no later than the
    /// shorter of the two idle timeouts from now. Requests and bytes never wake the watchdog
    /// (that cost every request two wake-ups and two timer registrations); instead it looks
    /// often enough that it is never late: whatever happens after `now` (a request ends, the
    /// next head starts) sets a deadline at least that far away, and nothing else moves one
    /// earlier.
    fn next_check(&self, limits: &ConnectionLimits, now: Instant) -> Instant {
        let soonest = now + limits.header_read_timeout.min(limits.keep_alive_timeout);
        self.idle_deadline(limits)
            .map_or(soonest, |deadline| deadline.min(soonest))
    }

    /// Bytes arrived: if idle, the next request's head has started.
    fn note_bytes(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.served.load(Ordering::Acquire)
            && let Ok(mut since) = self.reading_since.lock()
            && since.is_none()
        {
            *since = Some(Instant::now());
        }
    }
}

/// A request in flight on a connection, for as long as its handler runs.
struct InFlight(Arc<Connection>);

impl InFlight {
    fn enter(connection: &Arc<Connection>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(connection))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let connection = &self.0;
        connection.served.store(true, Ordering::Release);
        if connection.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Ok(mut since) = connection.idle_since.lock() {
                *since = Instant::now();
            }
            if let Ok(mut reading) = connection.reading_since.lock() {
                *reading = None;
            }
        }
    }
}

/// The open connections.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

impl Connections {
    fn len(&self) -> usize {
        self.open.lock().map(|open| open.len()).unwrap_or(0)
    }

    fn insert(&self) -> (u64, Arc<Connection>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new());
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, Arc::clone(&connection));
        }
        (id, connection)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Asks the connection idle longest (not asked already) to close; false if none is idle.
    fn shed_idlest(&self) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        let idlest = open
            .values()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .filter(|c| !c.is_shed.load(Ordering::Acquire))
            .min_by_key(|c| c.idle_since());
        match idlest {
            Some(connection) => {
                connection.is_shed.store(true, Ordering::Release);
                connection.shed.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops accepting,
/// lets the requests in flight finish (idle connections close at once) and returns when every
/// connection has closed.
pub(super) async fn serve_limited(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors (or another transient failure): make room and go on at
                // once; the connection shed closes within a moment.
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, open = connections.len(), "accept failed: shedding an idle connection");
                    last_warning = Some(Instant::now());
                }
                connections.shed_idlest();
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        if connections.len() >= limits.max_connections && !connections.shed_idlest() {
            // Every connection is busy: this one is closed at once, the listener stays open.
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (id, connection) = connections.insert();
        let connections = Arc::clone(&connections);
        let app = app.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, &connection, limits, stopping).await;
            connections.remove(id);
        });
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    // Every connection task holds a receiver; they are all gone when the last one ends.
    stop.closed().await;
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    connection: &Arc<Connection>,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let service = {
        let connection = Arc::clone(connection);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = InFlight::enter(&connection);
            // A request without a body (most GETs) needs no body timer.
            let mut request = request.map(|body| {
                if hyper::body::Body::is_end_stream(&body) {
                    axum::body::Body::new(body)
                } else {
                    axum::body::Body::new(TimeoutBody::new(body, limits.body_read_timeout))
                }
            });
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move {
                let response = tower::Service::call(&mut app, request).await;
                drop(in_flight);
                response
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // hyper's own header timer would also cut idle keep-alives at the header timeout; the
    // deadlines here tell the two apart.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    let stream = Watched {
        stream,
        connection: Arc::clone(connection),
    };
    let mut served = pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
    let mut is_stopping = *stopping.borrow();
    if is_stopping {
        served.as_mut().graceful_shutdown();
    }
    loop {
        let now = Instant::now();
        if connection
            .idle_deadline(&limits)
            .is_some_and(|at| at <= now)
        {
            break;
        }
        let check = connection.next_check(&limits, now);
        tokio::select! {
            _ = served.as_mut() => break,
            () = connection.shed.notified() => break,
            () = tokio::time::sleep_until(check) => {}
            changed = stopping.changed(), if !is_stopping => {
                is_stopping = true;
                if changed.is_ok() {
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A client's socket, noting when bytes arrive on an idle connection.
struct Watched {
    stream: tokio::net::TcpStream,
    connection: Arc<Connection>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.note_bytes();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that must arrive whole within a time limit (from when its head was in).
struct TimeoutBody {
    inner: Incoming,
    deadline: Instant,
    /// Made the first time the body is not there yet: a body that came with its head (most
    /// logins and refreshes) never registers a timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimeoutBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            deadline: Instant::now() + limit,
            timer: None,
        }
    }
}

/// The body did not arrive within `BODY_READ_TIMEOUT`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

impl hyper::body::Body for TimeoutBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(this.deadline)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
