//! Starting the real `raleph` binary for tests, and waiting for conditions.

#![allow(dead_code)]

pub mod chain;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RunningNode {
    pub child: Child,
    pub url: String,
    /// The p2p multiaddr, with `/p2p/<peer id>`.
    pub p2p: String,
}

impl RunningNode {
    /// Starts `raleph node` on a free port and waits for its "api listening" line.
    pub fn start(data_dir: &Path) -> RunningNode {
        RunningNode::start_with(data_dir, &[])
    }

    /// The same, with more arguments for `raleph node`.
    pub fn start_with(data_dir: &Path, args: &[&str]) -> RunningNode {
        let mut child = Command::new(env!("CARGO_BIN_EXE_raleph"))
            .args(["node", "--api-addr", "127.0.0.1:0"])
            .args(
                (!args.contains(&"--p2p-addr"))
                    .then_some(["--p2p-addr", "127.0.0.1:0"])
                    .into_iter()
                    .flatten(),
            )
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("RALEPH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the node");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut next_line = || {
            lines
                .next()
                .expect("the node printed its addresses")
                .expect("read stdout")
        };
        let url = loop {
            if let Some(url) = next_line().strip_prefix("api listening on ") {
                break url.trim().to_owned();
            }
        };
        // Printed right after the API's.
        let p2p = loop {
            if let Some(addr) = next_line().strip_prefix("p2p listening on ") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        RunningNode { child, url, p2p }
    }

    /// SIGKILL: no chance to flush or shut down cleanly.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// The test program (`crates/raleph-compute/guest`), built once per version (`v2` answers 2
/// at `/version`), in a target directory of its own.
pub fn guest_wasm(version: u32) -> Vec<u8> {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_build = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../raleph-compute/guest/Cargo.toml");
    // A target directory of its own: never waits on the workspace's build lock.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("test-guest-v{version}"));
    let mut build = std::process::Command::new(env!("CARGO"));
    build
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target);
    if version == 2 {
        build.args(["--features", "v2"]);
    }
    let status = build.status().expect("run cargo for the test guest");
    assert!(
        status.success(),
        "building the test guest failed (is the wasm32-wasip2 target installed?)"
    );
    std::fs::read(target.join("wasm32-wasip2/release/raleph_test_guest.wasm")).expect("guest")
}
