//! Helpers for the end-to-end tests: find the workspace's binaries, run them
//! as child processes that are killed when dropped, and the LocalStack
//! environment they share.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub mod chrome;
pub mod lane;
pub mod moto;
pub mod terraform;
pub use lane::log_events;

/// SHA-256 of the default job's counts as little-endian u16: the
/// notebook's `image` (`image_sha256` of the reference data in
/// `crates/core/tests/fixtures/default-job/reference.json`).
pub const REFERENCE_IMAGE_SHA256: &str =
    "5bc91c43bc5de67549a179791f84233679045c9503d6ce611b4675d27b89a432";

/// The path of a binary built in the same profile as the running test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with --workspace (bash scripts/test.sh does)",
        path.display()
    );
    path
}

/// Runs `mandel-orchestrate` in `dir` to completion.
pub fn orchestrate(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("mandel-orchestrate"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running mandel-orchestrate")
}

/// SHA-256 of the counts in a `.npy` file as stored (little-endian u16 for a
/// viewport job, u32 for a deep one).
pub fn counts_sha256(npy: &Path) -> String {
    let bytes = std::fs::read(npy).expect("reading the counts");
    let counts = mandel_core::CountsImage::from_npy(&bytes).expect("a counts .npy");
    let shape = mandel_core::counts::NpyShape::parse(&bytes).expect("a counts .npy");
    // The counts as stored (u16 for a viewport job), checked by decoding.
    let raw = mandel_core::blob::encode(counts.data(), shape.count_width);
    sha256_hex(&raw)
}

/// SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bucket of the LocalStack environment from `localstack/up.sh`.
/// Panics (the test fails, never skips) when that environment is missing.
pub fn localstack_bucket() -> String {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| !e.is_empty()),
        "AWS_ENDPOINT_URL is not set: run with bash scripts/test.sh (it starts LocalStack)"
    );
    std::env::var("MANDEL_BUCKET").expect("MANDEL_BUCKET from localstack/up.sh")
}

/// `workers` worker pollers and one stitch poller on `bucket`.
pub fn start_pollers(bucket: &str, workers: usize) -> Vec<Running> {
    let poller = |name| {
        Running::spawn(
            Command::new(binary(name))
                .args(["--poll", "--bucket", bucket])
                .stdout(Stdio::null()),
        )
    };
    (0..workers)
        .map(|_| poller("mandel-worker"))
        .chain([poller("mandel-stitch")])
        .collect()
}

/// Waits for a child (spawned with piped stderr) to exit, at most
/// `limit`: its status, its stderr and how long that took.
pub fn finish(mut child: Child, limit: Duration) -> (ExitStatus, String, Duration) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the orchestrator did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).unwrap();
    }
    (status, stderr, started.elapsed())
}

/// A child process killed (SIGKILL) when dropped.
pub struct Running(pub Child);

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        Running(cmd.spawn().expect("spawning a binary"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP response, as [`http_get`] reads it.
pub struct Response {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// `GET url` over HTTP/1.1 on a fresh connection (`http://host:port/path`
/// only: the servers under test are local).
pub fn http_get(url: &str) -> Response {
    http_get_with(url, &[])
}

/// [`http_get`] with these headers too; a `Host` among them replaces the
/// URL's (what a browser sends for a DNS-rebound name).
pub fn http_get_with(url: &str, headers: &[(&str, &str)]) -> Response {
    use std::io::Write;
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting");
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or(addr, |(_, v)| v);
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Starts `cmd` (a `mandel-explore` command line) with `--port 0`; returns
/// it and the URL it prints.
pub fn start_explorer(cmd: &mut Command) -> (Running, String) {
    use std::io::BufRead;
    let mut child = Running::spawn(
        cmd.args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "printed {line:?}");
    (child, url)
}

/// The tile pictures an explorer's `--cache` folder holds.
pub fn cached_tiles(cache: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        count(&p)
                    } else {
                        usize::from(p.extension().is_some_and(|x| x == "png"))
                    }
                })
                .sum()
        })
    }
    count(&cache.join("tiles"))
}
