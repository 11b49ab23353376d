//! A test hook: with `SSCARD_TEST_PAUSE_AT=<point>:<n>` in the environment, the process
//! prints `SSCARD-PAUSED <point>` to standard error the `n`-th time it reaches `<point>` and
//! then waits forever, so a test can kill it with SIGKILL at exactly that step. Without the
//! variable it does nothing.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the pause point.
pub const ENV: &str = "SSCARD_TEST_PAUSE_AT";

/// A pause point and its counter.
#[derive(Debug, Clone)]
pub struct PauseHook {
    armed: Option<(String, u64)>,
    point: &'static str,
    seen: Arc<AtomicU64>,
}

impl PauseHook {
    /// A hook that never pauses.
    pub fn none() -> Self {
        Self {
            armed: None,
            point: "",
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The hook for `point`, armed from the environment.
    pub fn from_env(point: &'static str) -> Self {
        let armed = std::env::var(ENV).ok().and_then(|v| {
            let (p, n) = v.split_once(':').unwrap_or((v.as_str(), "1"));
            Some((p.to_string(), n.parse().ok()?))
        });
        Self {
            armed,
            point,
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    fn should_pause(&self) -> bool {
        match &self.armed {
            Some((p, n)) if p == self.point => self.seen.fetch_add(1, Ordering::SeqCst) + 1 == *n,
            _ => false,
        }
    }

    fn announce(&self) {
        let mut e = std::io::stderr();
        let _ = writeln!(e, "SSCARD-PAUSED {}", self.point);
        let _ = e.flush();
    }

    /// Pause here if armed (blocking threads).
    pub fn maybe_pause_blocking(&self) {
        if self.should_pause() {
            self.announce();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }

    /// Pause here if armed (async code).
    pub async fn maybe_pause_async(&self) {
        if self.should_pause() {
            self.announce();
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
        }
    }
}
