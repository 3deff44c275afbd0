//! A private pair of tiles/stitch queues (each with a dead-letter queue) on
//! LocalStack, for tests that stop workers, poison queues or count
//! deliveries: other tests' pollers on the shared queues cannot touch them.
//! The binaries are pointed at them with `MANDEL_TILES_QUEUE_URL` and
//! `MANDEL_STITCH_QUEUE_URL`; the bucket is the shared one.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use mandel_aws::{AwsClients, S3Store};
use mandel_pipeline::{DEPLOYMENT_KEY, Deployment, FunctionLimits, JobId, ObjectStore, PutMode};

use crate::{Running, binary, localstack_bucket};

/// Short timeouts so that recovery happens in seconds.
pub const VISIBILITY_SECS: u32 = 3;
/// Deliveries before a message moves to its dead-letter queue.
pub const MAX_RECEIVES: u32 = 2;

pub struct Lane {
    pub rt: tokio::runtime::Runtime,
    pub clients: AwsClients,
    pub bucket: String,
    pub store: Arc<dyn ObjectStore>,
    pub tiles: String,
    pub tiles_dlq: String,
    pub stitch: String,
    pub stitch_dlq: String,
}

impl Lane {
    /// Creates the four queues, named after `name` and this process, on
    /// the shared bucket.
    pub fn new(name: &str) -> Lane {
        Self::create(name, localstack_bucket())
    }

    /// A lane that is a whole deployment of its own: its own bucket, and a
    /// deployment record with these function limits (the pollers enforce
    /// them; the client checks capacity against them).
    pub fn with_limits(name: &str, worker: FunctionLimits, stitch: FunctionLimits) -> Lane {
        localstack_bucket();
        let bucket = format!("t-{name}-{}", std::process::id());
        let mut lane = Self::create(name, bucket.clone());
        let s3 = lane.clients.s3.clone();
        lane.rt
            .block_on(s3.create_bucket().bucket(&bucket).send())
            .expect("creating the lane's bucket");
        lane.store = Arc::new(S3Store::new(s3, &bucket));
        lane.set_limits(worker, stitch);
        lane
    }

    /// Writes the lane's deployment record with these limits, as a new
    /// `terraform apply` with other timeouts or memory would.
    pub fn set_limits(&self, worker: FunctionLimits, stitch: FunctionLimits) {
        let record = Deployment {
            version: 1,
            bucket: self.bucket.clone(),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            tiles_queue_url: self.tiles.clone(),
            tiles_dlq_url: self.tiles_dlq.clone(),
            stitch_queue_url: self.stitch.clone(),
            stitch_dlq_url: self.stitch_dlq.clone(),
            explore_queue_url: None,
            worker,
            stitch,
            fleet: Default::default(),
        };
        self.rt
            .block_on(self.store.put(
                DEPLOYMENT_KEY,
                serde_json::to_vec(&record).unwrap().into(),
                Default::default(),
                PutMode::Overwrite,
            ))
            .expect("writing the lane's deployment record");
    }

    fn create(name: &str, bucket: String) -> Lane {
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        let clients = rt.block_on(AwsClients::from_env());
        let prefix = format!("t-{name}-{}", std::process::id());
        let create = |queue: String, dlq: Option<&str>| {
            let sqs = clients.sqs.clone();
            rt.block_on(async move {
                let mut attrs = HashMap::from([(
                    QueueAttributeName::VisibilityTimeout,
                    VISIBILITY_SECS.to_string(),
                )]);
                if let Some(dlq) = dlq {
                    let arn = sqs
                        .get_queue_attributes()
                        .queue_url(dlq)
                        .attribute_names(QueueAttributeName::QueueArn)
                        .send()
                        .await
                        .expect("dlq arn")
                        .attributes()
                        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                        .expect("dlq arn");
                    attrs.insert(
                        QueueAttributeName::RedrivePolicy,
                        format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{MAX_RECEIVES}"}}"#),
                    );
                }
                sqs.create_queue()
                    .queue_name(queue)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .expect("creating a test queue")
                    .queue_url()
                    .expect("queue url")
                    .to_string()
            })
        };
        let tiles_dlq = create(format!("{prefix}-tiles-dlq"), None);
        let stitch_dlq = create(format!("{prefix}-stitch-dlq"), None);
        let tiles = create(format!("{prefix}-tiles"), Some(&tiles_dlq));
        let stitch = create(format!("{prefix}-stitch"), Some(&stitch_dlq));
        let store: Arc<dyn ObjectStore> = Arc::new(S3Store::new(clients.s3.clone(), &bucket));
        Lane {
            rt,
            clients,
            bucket,
            store,
            tiles,
            tiles_dlq,
            stitch,
            stitch_dlq,
        }
    }

    /// A command for one of the workspace's binaries, on this lane's queues.
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(binary(name));
        cmd.env("MANDEL_TILES_QUEUE_URL", &self.tiles)
            .env("MANDEL_STITCH_QUEUE_URL", &self.stitch);
        cmd
    }

    /// A worker poller (batches of 10), its log (JSON lines) in `log`.
    pub fn worker(&self, log: &Path) -> Running {
        self.poller("mandel-worker", log)
    }

    /// A stitch poller, its log (JSON lines) in `log`.
    pub fn stitcher(&self, log: &Path) -> Running {
        self.poller("mandel-stitch", log)
    }

    fn poller(&self, name: &str, log: &Path) -> Running {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        Running::spawn(
            self.command(name)
                .args(["--poll", "--bucket", &self.bucket])
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .stdout(log)
                .stderr(Stdio::null()),
        )
    }

    /// Runs `mandel-orchestrate --bucket <bucket> <args>` in `dir` to the end.
    pub fn orchestrate(&self, dir: &Path, args: &[&str]) -> Output {
        self.command("mandel-orchestrate")
            .current_dir(dir)
            .args(["--bucket", &self.bucket])
            .args(args)
            .output()
            .expect("running mandel-orchestrate")
    }

    /// Sends raw bodies to a queue of this lane.
    pub fn send(&self, queue: &str, bodies: &[&str]) {
        for body in bodies {
            self.rt
                .block_on(
                    self.clients
                        .sqs
                        .send_message()
                        .queue_url(queue)
                        .message_body(*body)
                        .send(),
                )
                .expect("sending a test message");
        }
    }

    /// Messages in a queue, visible or in flight.
    pub fn depth(&self, queue: &str) -> u64 {
        let (visible, in_flight) = self.counts(queue);
        visible + in_flight
    }

    /// Messages received and not yet deleted (held by a consumer).
    pub fn in_flight(&self, queue: &str) -> u64 {
        self.counts(queue).1
    }

    fn counts(&self, queue: &str) -> (u64, u64) {
        queue_counts(&self.rt, &self.clients.sqs, queue)
    }

    /// Receives (and deletes) every message now in a queue: its bodies.
    pub fn drain(&self, queue: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let got = self
                .rt
                .block_on(
                    self.clients
                        .sqs
                        .receive_message()
                        .queue_url(queue)
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .send(),
                )
                .expect("receive");
            if got.messages().is_empty() {
                return bodies;
            }
            for m in got.messages() {
                bodies.push(m.body().unwrap_or_default().to_string());
                self.rt
                    .block_on(
                        self.clients
                            .sqs
                            .delete_message()
                            .queue_url(queue)
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .send(),
                    )
                    .expect("delete");
            }
        }
    }

    /// Submits with `--no-wait` and returns the job id it prints.
    pub fn submit(&self, dir: &Path, args: &[&str]) -> JobId {
        let out = self.orchestrate(dir, &[&["--no-wait"], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        JobId::parse(String::from_utf8_lossy(&out.stdout).trim()).expect("a job id on stdout")
    }

    /// Whether the job's result is published.
    pub fn finished(&self, job: &JobId) -> bool {
        self.rt
            .block_on(self.store.head(&job.result_key()))
            .expect("head")
            .is_some()
    }

    /// SHA-256 of the job's stitched counts (as stored).
    pub fn counts_sha256(&self, job: &JobId) -> String {
        let npy = self
            .rt
            .block_on(self.store.get(&job.counts_key()))
            .expect("counts.npy")
            .body;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("counts.npy");
        std::fs::write(&path, &npy).expect("write");
        crate::counts_sha256(&path)
    }

    /// Polls `check` every 100 ms until it holds; panics after `limit`.
    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < limit,
                "timed out after {limit:?} waiting until {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Keys under a prefix of the bucket.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.rt
            .block_on(self.store.list(prefix))
            .expect("list")
            .into_iter()
            .map(|m| m.key)
            .collect()
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        for url in [&self.tiles, &self.stitch, &self.tiles_dlq, &self.stitch_dlq] {
            let _ = self
                .rt
                .block_on(self.clients.sqs.delete_queue().queue_url(url).send());
        }
    }
}

/// The JSON log lines of a function whose `fields.message` is `message`.
pub fn log_events(log: &Path, message: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

/// A queue's visible and in-flight message counts.
pub fn queue_counts(
    rt: &tokio::runtime::Runtime,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> (u64, u64) {
    let attrs = rt
        .block_on(
            sqs.get_queue_attributes()
                .queue_url(queue)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send(),
        )
        .expect("queue attributes");
    let get = |name| {
        attrs
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}
