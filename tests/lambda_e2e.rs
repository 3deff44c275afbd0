//! The functions as real Lambda functions. `cargo lambda watch` emulates
//! the Lambda service (runtime API and Invoke API); `mandel-worker` and
//! `mandel-stitch` run in Lambda mode against its runtime API, exactly as
//! the `bootstrap` in their zips does in AWS; `mandel-trigger` plays the SQS
//! event-source mapping, invoking them through the Invoke API with batches
//! from the LocalStack queues. Needs LocalStack and cargo-lambda (the
//! README's test command provides both); fails without them.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mandel_e2e::{
    REFERENCE_IMAGE_SHA256, Running, binary, counts_sha256, localstack_bucket, log_events,
    orchestrate,
};
use mandel_pipeline::events;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cargo lambda watch` serving only the Lambda APIs on `port`.
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn cargo_lambda() -> Command {
    let exe = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("cargo-lambda"))
                .find(|p| p.exists())
        })
        .expect("cargo-lambda is not on PATH: run with bash scripts/test.sh (it installs it)");
    let mut cmd = Command::new(exe);
    cmd.current_dir(workspace()).arg("lambda");
    cmd
}

fn start_lambda_emulator(port: u16, log: &Path) -> Running {
    let emulator = Running::spawn(
        cargo_lambda()
            .args(["watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string()])
            .stdout(File::create(log).unwrap())
            .stderr(Stdio::inherit()),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    emulator
}

/// A function binary in Lambda mode, as Lambda starts a `bootstrap`, with
/// JSON logs (the format Terraform configures) written to `log`.
fn start_function(exe: &Path, name: &str, port: u16, bucket: &str, log: &Path) -> Running {
    Running::spawn(
        Command::new(exe)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt/{name}"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .env("MANDEL_BUCKET", bucket)
            .stdout(File::create(log).unwrap()),
    )
}

fn start_trigger(queue: &str, function: &str, port: u16, bucket: &str) -> Running {
    Running::spawn(
        Command::new(binary("mandel-trigger"))
            .args(["--queue", queue, "--function", function, "--bucket", bucket])
            .args(["--concurrency", "2"])
            .env(
                "AWS_ENDPOINT_URL_LAMBDA",
                format!("http://127.0.0.1:{port}"),
            ),
    )
}

#[test]
fn default_job_through_lambda_functions_under_cargo_lambda_watch() {
    let bucket = localstack_bucket();
    let dir = tempfile::tempdir().unwrap();
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let port = free_port();
    let _emulator = start_lambda_emulator(port, &log("watch"));
    let _worker = start_function(
        &binary("mandel-worker"),
        "mandel-worker",
        port,
        &bucket,
        &log("worker"),
    );
    let _stitch = start_function(
        &binary("mandel-stitch"),
        "mandel-stitch",
        port,
        &bucket,
        &log("stitch"),
    );
    let _triggers = [
        start_trigger("tiles", "mandel-worker", port, &bucket),
        start_trigger("stitch", "mandel-stitch", port, &bucket),
    ];

    let out = orchestrate(
        dir.path(),
        &[
            "--bucket",
            &bucket,
            "--fresh",
            "--timeout",
            "300",
            "--counts-out",
            "counts.npy",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        counts_sha256(&dir.path().join("counts.npy")),
        REFERENCE_IMAGE_SHA256
    );
    // The work really went through the Lambda functions: every tile was
    // rendered in an invocation of the worker, and the stitch function
    // published the result.
    let tiles: u64 = log_events(&log("worker"), events::TILE_BATCH_DONE)
        .iter()
        .map(|e| e["fields"]["tiles"].as_u64().unwrap())
        .sum();
    assert!(tiles >= 256, "the worker function rendered {tiles} tiles");
    // Other tests' jobs may pass through the same queues meanwhile.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let job = stderr
        .lines()
        .find_map(|l| l.strip_prefix("job ")?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job id in: {stderr}"));
    let stitched = log_events(&log("stitch"), events::STITCHED);
    assert_eq!(
        stitched
            .iter()
            .filter(|e| e["fields"]["job"] == job)
            .count(),
        1,
        "{stitched:?}"
    );
}

/// The zip `infra/package.sh` builds for Lambda holds one executable,
/// `bootstrap`, which starts in the Lambda environment and serves an SQS
/// event: a real tile of a submitted job succeeds, a malformed message
/// beside it is the only failure reported.
#[test]
fn packaged_worker_zip_serves_an_sqs_event() {
    let bucket = localstack_bucket();
    let dir = tempfile::tempdir().unwrap();
    let zip_path = workspace().join("target/lambda/mandel-worker/bootstrap.zip");
    let zip = File::open(&zip_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build it with infra/package.sh (bash scripts/test.sh does)",
            zip_path.display()
        )
    });
    let mut archive = zip::ZipArchive::new(zip).unwrap();
    assert_eq!(archive.file_names().collect::<Vec<_>>(), ["bootstrap"]);
    let bootstrap = dir.path().join("bootstrap");
    std::io::copy(
        &mut archive.by_name("bootstrap").unwrap(),
        &mut File::create(&bootstrap).unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(
        &bootstrap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    // A one-tile job in the bucket, for a real tile message.
    let out = orchestrate(
        dir.path(),
        &[
            "--bucket",
            &bucket,
            "--fresh",
            "--no-wait",
            "--tiles-per-side",
            "1",
            "--tile-pixels",
            "16",
            "--max-iter",
            "50",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let record = |id: &str, body: String| {
        serde_json::json!({
            "messageId": id,
            "receiptHandle": format!("receipt-{id}"),
            "body": body,
            "attributes": { "ApproximateReceiveCount": "1" },
            "eventSource": "aws:sqs",
        })
    };
    let event = serde_json::json!({ "Records": [
        record("good", serde_json::json!({ "job": job, "row": 0, "col": 0 }).to_string()),
        record("bad", "{not json".to_string()),
    ]});
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, event.to_string()).unwrap();

    let port = free_port();
    let _emulator = start_lambda_emulator(port, &dir.path().join("watch.log"));
    // `cargo lambda invoke` only accepts the names of the project's binaries.
    let _function = start_function(
        &bootstrap,
        "mandel-worker",
        port,
        &bucket,
        &dir.path().join("function.log"),
    );
    let out = cargo_lambda()
        .args(["invoke", "mandel-worker", "--invoke-address", "127.0.0.1"])
        .args([
            "--invoke-port",
            &port.to_string(),
            "--output-format",
            "json",
        ])
        .arg("--data-file")
        .arg(&event_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(
        response,
        serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": "bad" }] })
    );
    let done = log_events(&dir.path().join("function.log"), events::TILE_BATCH_DONE);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["fields"]["tiles"], 1);
}
