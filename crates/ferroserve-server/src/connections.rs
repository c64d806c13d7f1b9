//! Accepting connections under limits, for the HTTP and gRPC front ends: TLS when
//! configured (rustls, the certificate reloaded when its files change, client
//! certificates optional), a cap on open connections with headroom kept for health
//! checks, and timeouts that close slow or idle clients.
//!
//! At the cap, a port makes room before it turns a client away: it closes a connection
//! with no request in flight, first the oldest that never sent a whole request (idle
//! since it opened, or still sending its head), then the oldest idle keep-alive one,
//! much as nginx closes idle keep-alive connections when it runs out. A flood of
//! connections that never finish a request therefore cannot shut out a client that
//! sends one, such as a health probe, nor close a client between two requests while
//! flood connections remain. On a gRPC port a request is a call, counted until its
//! response (a stream's included) ends; a gRPC client reconnects when its idle
//! connection is closed.
//!
//! hyper's header-read timeout starts whenever a connection waits for a request head, so
//! [`ConnectionLimits::header_timeout`] bounds both a slow head (slow-loris) and an idle
//! keep-alive connection. A body that stops arriving is cut by the router's body
//! timeout ([`crate::http::HttpLimits::body_timeout`]). A gRPC connection must send the
//! HTTP/2 preface within the header timeout; after that, HTTP/2 keep-alive pings close
//! one whose client is gone, and an idle one stays until it is needed to make room.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tower::ServiceExt;

/// Limits on the connections of the inference ports (HTTP and gRPC together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once, on the HTTP and gRPC ports together. Beyond it,
    /// `health_headroom` more are accepted on the HTTP port and answered only on the
    /// health routes (one request each); further ones are closed.
    pub max_connections: usize,
    pub health_headroom: usize,
    /// Time a client has to send a request head, and to send the next one on an idle
    /// keep-alive connection; also the time a TLS handshake may take.
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// Defaults sized to the process's open-file limit: three quarters of it for
    /// connections (the rest for model files, listeners and the engine's own), of which
    /// 64 are kept for health checks.
    pub fn for_this_process() -> Self {
        let files = open_file_limit().unwrap_or(1024);
        let usable = (files * 3 / 4).max(16);
        let health_headroom = 64.min(usable / 4);
        let metrics = Self::METRICS_CONNECTIONS + Self::METRICS_HEADROOM;
        ConnectionLimits {
            max_connections: usable
                .saturating_sub(health_headroom + metrics)
                .clamp(8, 100_000),
            health_headroom,
            header_timeout: Duration::from_secs(30),
        }
    }

    /// Connections of the metrics port, which has a cap of its own: a scraper and
    /// probes need a few, and a flood of the inference ports must not take them.
    const METRICS_CONNECTIONS: usize = 32;
    const METRICS_HEADROOM: usize = 8;

    /// The limits of the metrics port: these, capped at a few connections.
    pub fn for_metrics(self) -> Self {
        ConnectionLimits {
            max_connections: self.max_connections.min(Self::METRICS_CONNECTIONS),
            health_headroom: self.health_headroom.min(Self::METRICS_HEADROOM),
            ..self
        }
    }
}

/// The connections open on a set of ports, with their cap: one for the HTTP and gRPC
/// ports together, so that a flood of either cannot take more descriptors than the cap,
/// and room made on one can come from the other; another for the metrics port.
#[derive(Clone)]
pub struct Connections {
    limits: ConnectionLimits,
    roster: Roster,
}

impl Connections {
    pub fn new(limits: ConnectionLimits) -> Self {
        Connections {
            limits,
            roster: Roster::default(),
        }
    }
}

/// Largest request head (request line and headers) an HTTP/1 client may send; a larger
/// one is answered 431. Bodies stream past it.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The soft limit on open files, from `/proc/self/limits`.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The certificate, key and optional client CA of a TLS port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate signed by one of these.
    pub client_ca: Option<PathBuf>,
}

/// A TLS configuration read from [`TlsFiles`], read again when a file changes; a
/// reload that fails is logged and the previous configuration kept.
pub struct Tls {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: Mutex<(Vec<Option<SystemTime>>, Arc<ServerConfig>)>,
}

impl Tls {
    /// Reads the files; `alpn` lists the protocols offered (`h2`, `http/1.1`).
    pub fn new(files: TlsFiles, alpn: &[&str]) -> Result<Self, String> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let config = server_config(&files, &alpn)?;
        Ok(Tls {
            current: Mutex::new((modified(&files), Arc::new(config))),
            files,
            alpn,
        })
    }

    /// The configuration in force, reloaded first if a file changed.
    fn config(&self) -> Arc<ServerConfig> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let stamps = modified(&self.files);
        if stamps != current.0 {
            current.0 = stamps;
            match server_config(&self.files, &self.alpn) {
                Ok(config) => {
                    tracing::info!("TLS certificate reloaded");
                    current.1 = Arc::new(config);
                }
                Err(e) => {
                    tracing::warn!("TLS certificate not reloaded, keeping the previous one: {e}")
                }
            }
        }
        current.1.clone()
    }
}

fn modified(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
    .collect()
}

fn server_config(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let named = |file: &PathBuf, e: &dyn std::fmt::Display| format!("{}: {e}", file.display());
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| named(&files.cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| named(&files.key, &e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| named(ca, &e))? {
                roots
                    .add(cert.map_err(|e| named(ca, &e))?)
                    .map_err(|e| named(ca, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| named(ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| named(&files.cert, &e))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// A served connection: plain TCP or TLS over it.
pub enum Stream {
    Plain(Lingering),
    Tls(Box<tokio_rustls::server::TlsStream<Lingering>>),
}

/// How long, and for how many bytes, a closed connection keeps reading what its client
/// still sends ([`Lingering`]).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 8 << 20;

/// A TCP connection that closes the way a client can read its last answer. A server that
/// answers before reading the body (a 429 before a 600 KB tensor) and closes a socket
/// with unread data makes the kernel send a reset, which can destroy that answer in the
/// client's buffers. Once served, this stops writing (FIN after the answer) and reads
/// and drops what the client still sends, for at most [`LINGER_TIME`] and
/// [`LINGER_BYTES`], before it closes: nginx's lingering close.
/// A connection closed to make room ([`Roster::make_room_for`]) with no request answered
/// since has nothing to deliver, and closes at once.
pub struct Lingering {
    tcp: Option<TcpStream>,
    slot: Option<Arc<Slot>>,
}

impl Lingering {
    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.tcp
                .as_mut()
                .expect("a lingering stream is used before it is dropped"),
        )
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        if self
            .slot
            .as_ref()
            .is_some_and(|slot| slot.closed_unanswered())
        {
            return;
        }
        let (Some(mut tcp), Ok(runtime)) = (self.tcp.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tcp.shutdown().await;
            let mut sink = vec![0u8; 16 << 10];
            let drain = async {
                let mut read = 0;
                while read < LINGER_BYTES {
                    match tcp.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER_TIME, drain).await;
        });
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().tcp().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tcp().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tcp().poll_shutdown(cx)
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
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
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
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The open connections of one or more ports, oldest first.
#[derive(Clone, Default)]
struct Roster(Arc<Mutex<Members>>);

#[derive(Default)]
struct Members {
    next: u64,
    open: BTreeMap<u64, Arc<Slot>>,
}

/// One connection of a [`Roster`]: its requests in flight, and whether it was told to
/// close to make room.
#[derive(Default)]
struct Slot {
    /// Requests in flight, plus [`CLOSING`] once the connection is told to close.
    requests: AtomicUsize,
    /// A request came in whole.
    served: AtomicBool,
    close: Arc<Notify>,
}

const CLOSING: usize = 1 << (usize::BITS - 1);

/// A connection's place in its [`Roster`], given up when the connection ends.
struct Member {
    id: u64,
    slot: Arc<Slot>,
    roster: Roster,
}

impl Roster {
    /// Adds a connection; returns how many are open with it.
    fn join(&self) -> (usize, Member) {
        let mut members = self.members();
        let id = members.next;
        members.next += 1;
        let slot = Arc::new(Slot::default());
        members.open.insert(id, slot.clone());
        let open = members.open.len();
        let member = Member {
            id,
            slot,
            roster: self.clone(),
        };
        (open, member)
    }

    /// Tells a connection opened before `newcomer` with no request in flight to close,
    /// and stops counting it; false when every one is busy. It picks the oldest that
    /// never sent a whole request (a flood, a slow head), else the oldest idle keep-alive
    /// one, so that a client between two requests is the last to go.
    fn make_room_for(&self, newcomer: &Member) -> bool {
        let mut members = self.members();
        let older = || members.open.range(..newcomer.id);
        let never_served = older().filter(|(_, slot)| !slot.served.load(Ordering::Acquire));
        let chosen = never_served
            .chain(older())
            .find(|(_, slot)| slot.tell_to_close())
            .map(|(&id, slot)| (id, slot.clone()));
        let Some((id, slot)) = chosen else {
            return false;
        };
        members.open.remove(&id);
        slot.close.notify_one();
        true
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.roster.members().open.remove(&self.id);
    }
}

impl Slot {
    /// Counts a request in flight until the guard drops; `None` once the connection was
    /// told to close, when the request is only answered if it is a health check.
    fn begin(self: &Arc<Self>) -> Option<InFlight> {
        self.served.store(true, Ordering::Release);
        let before = self.requests.fetch_add(1, Ordering::AcqRel);
        // A request that came in after the close keeps its count, so that the
        // connection lingers to deliver its answer.
        (before & CLOSING == 0).then(|| InFlight(self.clone()))
    }

    /// Never to be closed to make room (a connection in the health headroom): counted as
    /// one request in flight for as long as it is open.
    fn keep_open(&self) {
        self.requests.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks it closing if it has no request in flight.
    fn tell_to_close(&self) -> bool {
        self.requests
            .compare_exchange(0, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Told to close, and no request came in since.
    fn closed_unanswered(&self) -> bool {
        self.requests.load(Ordering::Acquire) == CLOSING
    }
}

struct InFlight(Arc<Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts the next TCP connection, riding out errors such as running out of file
/// descriptors (logged, then retried after a pause) instead of stopping.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => return tcp,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// The TLS handshake (bounded by the header timeout) or the plain stream.
async fn secure(
    tcp: TcpStream,
    slot: Option<Arc<Slot>>,
    tls: Option<&Tls>,
    limits: &ConnectionLimits,
) -> Option<Stream> {
    let tcp = Lingering {
        tcp: Some(tcp),
        slot,
    };
    let Some(tls) = tls else {
        return Some(Stream::Plain(tcp));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
    match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(Stream::Tls(Box::new(stream))),
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// Serves HTTP on `listener` until `shutdown` turns true, then lets each connection
/// finish its request in flight and returns once all are closed. At the limit of
/// `connections`, the oldest connection with no request in flight is closed to make
/// room; when every one is busy, further connections get `health` (one request, then
/// closed) while the headroom lasts.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    health: Router,
    connections: Connections,
    tls: Option<Arc<Tls>>,
    nodelay: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let Connections { limits, roster } = connections;
    let (done, mut all_done) = mpsc::channel::<()>(1);
    loop {
        let tcp = tokio::select! {
            tcp = accept(&listener) => tcp,
            _ = shutdown.wait_for(|&stop| stop) => break,
        };
        let (open, member) = roster.join();
        let full = open > limits.max_connections && !roster.make_room_for(&member);
        if full && open > limits.max_connections + limits.health_headroom {
            continue; // closed at once: the member and the stream drop here
        }
        let _ = tcp.set_nodelay(nodelay);
        let (app, health) = (app.clone(), health.clone());
        let (tls, mut shutdown, done) = (tls.clone(), shutdown.clone(), done.clone());
        if full {
            member.slot.keep_open();
        }
        tokio::spawn(async move {
            let _done = done;
            let slot = member.slot.clone();
            let _member = member;
            let opened = async {
                // The first request must start within the header timeout: hyper's
                // automatic choice between HTTP/1 and HTTP/2 reads the first bytes with no
                // timer of its own, so a connection that never speaks would be held for
                // ever.
                if tls.is_none() {
                    let mut first = [0u8];
                    let first_bytes = tcp.peek(&mut first);
                    if tokio::time::timeout(limits.header_timeout, first_bytes)
                        .await
                        .is_err()
                    {
                        return None;
                    }
                }
                secure(tcp, Some(slot.clone()), tls.as_deref(), &limits).await
            };
            let stream = tokio::select! {
                stream = opened => stream,
                _ = slot.close.notified() => None,
            };
            let Some(stream) = stream else {
                return;
            };
            let requests = slot.clone();
            let service = tower::service_fn(move |request: hyper::Request<Incoming>| {
                let request = request.map(axum::body::Body::new);
                let in_flight = requests.begin();
                let router = match (&in_flight, full) {
                    (Some(_), false) => app.clone(),
                    _ => health.clone(),
                };
                async move {
                    let _in_flight = in_flight;
                    router.oneshot(request).await
                }
            });
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .keep_alive(!full);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(256)
                .keep_alive_interval(Some(Duration::from_secs(60)));
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            let mut connection = pin!(connection);
            let closing = tokio::select! {
                _ = connection.as_mut() => return,
                _ = shutdown.wait_for(|&stop| stop) => false,
                _ = slot.close.notified() => true,
            };
            // One closed to make room that never had a request (a slow head) has
            // nothing to finish: it is closed now, not after the lingering time, since
            // it no longer counts against the cap but still holds a descriptor.
            if closing && !slot.served.load(Ordering::Acquire) {
                return;
            }
            // Closes the connection if idle, else lets its request in flight finish. One
            // closed to make room had none when told, but may still be writing an
            // earlier answer or hold part of a head, which hyper would wait for: it gets
            // the lingering time to finish.
            connection.as_mut().graceful_shutdown();
            if closing {
                let _ = tokio::time::timeout(LINGER_TIME, connection).await;
            } else {
                let _ = connection.await;
            }
        });
    }
    drop(done);
    let _ = all_done.recv().await;
}

/// The connections of a gRPC port as tonic takes them: accepted under the connection
/// cap it shares with the HTTP port, making room as an HTTP port does (the oldest
/// connection with no call in flight, one that never started a call first, is closed);
/// when every one is busy, the newcomer is closed at once. The TLS handshake is done off the accept loop. Tonic's
/// service must be wrapped in [`GrpcCalls`], which counts each connection's calls.
pub fn grpc_incoming(
    listener: TcpListener,
    connections: Connections,
    tls: Option<Arc<Tls>>,
    nodelay: bool,
) -> impl tokio_stream::Stream<Item = io::Result<Counted>> {
    let (sender, receiver) = mpsc::channel::<io::Result<Counted>>(64);
    let Connections { limits, roster } = connections;
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                tcp = accept(&listener) => tcp,
                _ = sender.closed() => return,
            };
            let (open, member) = roster.join();
            if open > limits.max_connections && !roster.make_room_for(&member) {
                continue;
            }
            let _ = tcp.set_nodelay(nodelay);
            let (sender, tls) = (sender.clone(), tls.clone());
            tokio::spawn(async move {
                let slot = member.slot.clone();
                let opened = secure(tcp, Some(slot.clone()), tls.as_deref(), &limits);
                let stream = tokio::select! {
                    stream = opened => stream,
                    _ = slot.close.notified() => None,
                };
                if let Some(stream) = stream {
                    let counted = Counted::new(stream, member, limits.header_timeout);
                    let _ = sender.send(Ok(counted)).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// The HTTP/2 connection preface every gRPC client sends first (RFC 9113, 3.4).
const HTTP2_PREFACE_BYTES: u64 = 24;

/// A gRPC connection as tonic reads it: counted in its roster until tonic drops
/// it. It ends (end of stream) when told to close to make room, and fails when the
/// client has not sent the HTTP/2 preface within the header timeout, so that a
/// connection that never speaks, or speaks too slowly, cannot hold its place.
pub struct Counted {
    stream: Stream,
    member: Member,
    told_to_close: Pin<Box<tokio::sync::futures::OwnedNotified>>,
    closed: bool,
    preface_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    read: u64,
}

impl Counted {
    fn new(stream: Stream, member: Member, header_timeout: Duration) -> Self {
        let told_to_close = Box::pin(member.slot.close.clone().notified_owned());
        Counted {
            stream,
            member,
            told_to_close,
            closed: false,
            preface_deadline: Some(Box::pin(tokio::time::sleep(header_timeout))),
            read: 0,
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.closed = this.closed || this.told_to_close.as_mut().poll(cx).is_ready();
        if this.closed {
            return Poll::Ready(Ok(())); // nothing read: the end of the stream
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.read += (buf.filled().len() - before) as u64;
        if this.read >= HTTP2_PREFACE_BYTES {
            this.preface_deadline = None;
        } else if polled.is_pending() {
            if let Some(deadline) = &mut this.preface_deadline {
                if deadline.as_mut().poll(cx).is_ready() {
                    let late = "no HTTP/2 preface within the header timeout";
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, late)));
                }
            }
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Counted {
    type ConnectInfo = GrpcConnection;

    fn connect_info(&self) -> Self::ConnectInfo {
        GrpcConnection(self.member.slot.clone())
    }
}

/// The connection a gRPC call came on, in the call's extensions.
#[derive(Clone)]
pub struct GrpcConnection(Arc<Slot>);

/// A tower layer over tonic's routes that counts each connection's calls in flight,
/// from the request until its response body (a stream's last message included) is
/// dropped, so that only a connection with none is closed to make room.
#[derive(Clone, Copy, Default)]
pub struct GrpcCalls;

impl<S> tower::Layer<S> for GrpcCalls {
    type Service = CountingCalls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountingCalls(inner)
    }
}

/// The service of [`GrpcCalls`].
#[derive(Clone)]
pub struct CountingCalls<S>(S);

impl<S> tower::Service<http::Request<tonic::body::Body>> for CountingCalls<S>
where
    S: tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
    >,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let call = request
            .extensions()
            .get::<GrpcConnection>()
            .and_then(|connection| connection.0.begin());
        let response = self.0.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| tonic::body::Body::new(InFlightBody { body, _call: call })))
        })
    }
}

/// A response body that holds its call's place in the connection's count until dropped.
struct InFlightBody {
    body: tonic::body::Body,
    _call: Option<InFlight>,
}

impl http_body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
