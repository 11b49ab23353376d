//! A fault-injecting HTTP/1.1 proxy for tests: it sits between the agent and the server and,
//! request by request, refuses connections, holds requests without answering (timeouts),
//! answers 500 without forwarding, forwards but cuts the response short, delivers a request
//! twice, or delivers it late (after the agent has retried, so the server sees the retry first
//! and the original after it). Decisions come from a seeded generator, so a failing run can be
//! repeated. With several upstreams it also balances requests round-robin over them (several
//! server instances on one database), so a duplicate may reach another instance. It
//! understands just enough HTTP: a request head and a `Content-Length` body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Probabilities of each fault, per request (refusal: per connection).
#[derive(Debug, Clone, Copy)]
pub struct FaultConfig {
    /// Seed of the decisions.
    pub seed: u64,
    /// Close a new connection at once.
    pub refuse: f64,
    /// Read the request, never answer (until `hold`), then close.
    pub timeout: f64,
    /// Answer 500 without forwarding.
    pub error_500: f64,
    /// Forward, then send only half of the answer and close.
    pub cut: f64,
    /// Forward twice; answer with the first answer.
    pub duplicate: f64,
    /// Answer 502 at once without forwarding; deliver the request to the server `delay` later.
    pub late: f64,
    /// How long a timed-out request is held.
    pub hold: Duration,
    /// How late a late request is delivered.
    pub delay: Duration,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            refuse: 0.05,
            timeout: 0.05,
            error_500: 0.08,
            cut: 0.08,
            duplicate: 0.08,
            late: 0.08,
            hold: Duration::from_secs(2),
            delay: Duration::from_millis(300),
        }
    }
}

/// How often each fault was injected.
#[derive(Debug, Default)]
pub struct FaultStats {
    /// Connections refused.
    pub refused: AtomicU64,
    /// Requests held until timeout.
    pub timeouts: AtomicU64,
    /// 500s answered.
    pub errors_500: AtomicU64,
    /// Responses cut.
    pub cut: AtomicU64,
    /// Requests delivered twice.
    pub duplicated: AtomicU64,
    /// Requests delivered late.
    pub late: AtomicU64,
    /// Requests passed through untouched.
    pub passed: AtomicU64,
}

impl FaultStats {
    /// (refused, timeouts, 500s, cut, duplicated, late, passed).
    pub fn snapshot(&self) -> [u64; 7] {
        [
            self.refused.load(Ordering::Relaxed),
            self.timeouts.load(Ordering::Relaxed),
            self.errors_500.load(Ordering::Relaxed),
            self.cut.load(Ordering::Relaxed),
            self.duplicated.load(Ordering::Relaxed),
            self.late.load(Ordering::Relaxed),
            self.passed.load(Ordering::Relaxed),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Pass,
    Timeout,
    Error500,
    Cut,
    Duplicate,
    Late,
}

struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    stats: Arc<FaultStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstreams: Vec<SocketAddr>,
    next: std::sync::atomic::AtomicUsize,
    config: FaultConfig,
    rng: Mutex<Rng>,
    stats: Arc<FaultStats>,
}

impl Shared {
    fn upstream(&self) -> SocketAddr {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.upstreams.len().max(1);
        self.upstreams
            .get(i % n)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)))
    }

    fn roll(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next_f64()
    }

    fn choose(&self) -> Fault {
        let c = &self.config;
        let r = self.roll();
        let table = [
            (c.timeout, Fault::Timeout),
            (c.error_500, Fault::Error500),
            (c.cut, Fault::Cut),
            (c.duplicate, Fault::Duplicate),
            (c.late, Fault::Late),
        ];
        let mut acc = 0.0;
        for (p, f) in table {
            acc += p;
            if r < acc {
                return f;
            }
        }
        Fault::Pass
    }
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to `upstreams` in turn.
    pub async fn start(upstreams: &[SocketAddr], config: FaultConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(FaultStats::default());
        let shared = Arc::new(Shared {
            upstreams: upstreams.to_vec(),
            next: std::sync::atomic::AtomicUsize::new(0),
            config,
            rng: Mutex::new(Rng(config.seed.max(1))),
            stats: Arc::clone(&stats),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                if shared.roll() < shared.config.refuse {
                    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                    drop(conn);
                    continue;
                }
                let s = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve_conn(conn, s).await;
                });
            }
        });
        Ok(Self { addr, stats, task })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counts of injected faults.
    pub fn stats(&self) -> &FaultStats {
        &self.stats
    }
}

/// Read one HTTP message (head and `Content-Length` body) from `s`, with `buf` holding bytes
/// already read. `None` at a clean end of stream.
async fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("head too long"));
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::other("cut head"))
            };
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head =
        String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let total = head_end + len;
    while buf.len() < total {
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("cut body"));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let rest = buf.split_off(total);
    let msg = std::mem::replace(buf, rest);
    Ok(Some(msg))
}

/// Send a request to the upstream on a new connection and read its answer.
async fn forward(upstream: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    up.write_all(request).await?;
    let mut buf = Vec::new();
    read_message(&mut up, &mut buf)
        .await?
        .ok_or_else(|| std::io::Error::other("no answer"))
}

async fn serve_conn(mut conn: TcpStream, s: Arc<Shared>) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = Vec::new();
    while let Some(req) = read_message(&mut conn, &mut buf).await? {
        match s.choose() {
            Fault::Pass => {
                s.stats.passed.fetch_add(1, Ordering::Relaxed);
                let resp = forward(s.upstream(), &req).await?;
                conn.write_all(&resp).await?;
            }
            Fault::Timeout => {
                s.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(s.config.hold).await;
                return Ok(());
            }
            Fault::Error500 => {
                s.stats.errors_500.fetch_add(1, Ordering::Relaxed);
                conn.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await?;
                return Ok(());
            }
            Fault::Cut => {
                s.stats.cut.fetch_add(1, Ordering::Relaxed);
                let resp = forward(s.upstream(), &req).await?;
                let half = resp.get(..resp.len() / 2).unwrap_or_default();
                conn.write_all(half).await?;
                return Ok(());
            }
            Fault::Duplicate => {
                s.stats.duplicated.fetch_add(1, Ordering::Relaxed);
                let first = forward(s.upstream(), &req).await?;
                let _ = forward(s.upstream(), &req).await;
                conn.write_all(&first).await?;
            }
            Fault::Late => {
                s.stats.late.fetch_add(1, Ordering::Relaxed);
                let upstream = s.upstream();
                let delay = s.config.delay;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = forward(upstream, &req).await;
                });
                conn.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await?;
                return Ok(());
            }
        }
    }
    Ok(())
}
