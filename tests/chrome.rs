//! A real browser for the tests: Debian's Chromium, headless, driven
//! through its ChromeDriver (WebDriver) by fantoccini. `scripts/browser.sh`
//! installs both and names them in `MANDEL_CHROMIUM` and
//! `MANDEL_CHROMEDRIVER`; without them a test fails, never skips.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::Running;

/// A headless Chromium session; the driver is killed when dropped.
pub struct Browser {
    pub client: Client,
    _driver: Running,
    _profile: tempfile::TempDir,
}

fn from_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run with bash scripts/test.sh (scripts/browser.sh installs Chromium)")
    })
}

impl Browser {
    /// Starts ChromeDriver on a free port and opens a session with a fresh
    /// profile and a 1200×1400 window, recording the page's console.
    pub async fn start() -> Browser {
        let (chromium, chromedriver) =
            (from_env("MANDEL_CHROMIUM"), from_env("MANDEL_CHROMEDRIVER"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Running::spawn(
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let profile = tempfile::tempdir().expect("a profile folder");
        // As root, without a sandbox; without the background networking
        // Chromium's calls home are refused by this closed network, many
        // at a time.
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1200,1400", "--force-color-profile=srgb",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let caps: fantoccini::wd::Capabilities = caps.as_object().expect("an object").clone();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::rustls()
                .expect("a TLS setup")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session from {chromedriver}: {e}"),
            }
        };
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// The page's console messages at level SEVERE (errors, failed loads)
    /// since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let logs = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("reading the browser's console");
        logs.as_array()
            .expect("a list of log entries")
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// ChromeDriver's console log endpoint (`goog:loggingPrefs`), which
/// WebDriver itself lacks.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// A JSON value's `f64`, for the numbers a script returns.
pub fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}
