//! The TCP server: many concurrent clients on tokio, each message answered in order on its
//! connection. A malformed frame gets an error response and the connection goes on; only a
//! broken stream ends it. Commands that write the key store run on the blocking pool so they
//! never stall the tasks doing cryptogram checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};

use crate::codes::ErrorCode;
use crate::frame::{MAX_MESSAGE, build_frame_error, with_length};
use crate::hsm::Hsm;

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// A connection idle this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Commands that write the key store or the audit log.
fn writes_store(message: &[u8], header_len: usize) -> bool {
    matches!(
        message.get(header_len..header_len + 2),
        Some(b"A0" | b"A6" | b"A8" | b"KD" | b"K3")
    )
}

async fn handle(mut stream: TcpStream, hsm: Arc<Hsm>) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let header_len = hsm.header_len();
    let mut len = [0u8; 2];
    loop {
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut len)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(_)) => {}
        }
        let n = usize::from(u16::from_be_bytes(len));
        let mut message = vec![0u8; n];
        stream.read_exact(&mut message).await?;
        let response = if n > MAX_MESSAGE {
            build_frame_error(b"", header_len, ErrorCode::DataLength)
        } else if writes_store(&message, header_len) {
            let hsm = Arc::clone(&hsm);
            tokio::task::spawn_blocking(move || hsm.execute(&message))
                .await
                .map_err(std::io::Error::other)?
        } else {
            hsm.execute(&message)
        };
        let framed =
            with_length(&response).ok_or_else(|| std::io::Error::other("response too long"))?;
        stream.write_all(&framed).await?;
    }
}

/// Serve on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    hsm: Arc<Hsm>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    // Out of file descriptors and the like: back off, keep serving.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                    return Ok(());
                };
                let hsm = Arc::clone(&hsm);
                tokio::spawn(async move {
                    let _ = handle(stream, hsm).await;
                    drop(permit);
                });
            }
        }
    }
}

/// A server running on its own runtime thread (for tests, benchmarks and embedding).
#[derive(Debug)]
pub struct BackgroundServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl BackgroundServer {
    /// Bind `addr` (port 0 picks a free port) and serve `hsm` with `workers` runtime threads.
    pub fn start(hsm: Arc<Hsm>, addr: &str, workers: usize) -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local = std_listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("hsm-sim".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers.max(1))
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener)?;
                    serve(listener, hsm, async {
                        let _ = rx.await;
                    })
                    .await
                })
            })?;
        Ok(Self {
            addr: local,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and wait for the thread.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| std::io::Error::other("server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
