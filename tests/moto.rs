//! A local cloud that enforces IAM, for the tests of the deployed system's
//! permissions: a moto server (S3, SQS, IAM) started for one test on a free
//! port, with the deployment's bucket, queues (each with a dead-letter
//! queue) and deployment record, and one IAM user per principal whose only
//! policy is the one given (rendered from `infra/` by the caller). After
//! setup, moto checks every request's signature and the user's policy.
//!
//! LocalStack stays the default local cloud; its IAM enforcement is a paid
//! feature, so this second emulator is used where IAM is the point.
//! moto is installed by `localstack/moto.sh`, which the README's test
//! command runs; without it the tests fail, never skip.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use mandel_pipeline::{DEPLOYMENT_KEY, Deployment, FunctionLimits};
use serde_json::{Value, json};

use crate::terraform::Arns;
use crate::{Running, binary};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
/// Short visibility timeouts, as on the LocalStack lanes (`lane.rs`).
pub const VISIBILITY_SECS: u32 = 3;
pub const MAX_RECEIVES: u32 = 2;

pub struct IamCloud {
    _server: Running,
    pub endpoint: String,
    pub bucket: String,
    pub deployment: Deployment,
    users: BTreeMap<String, (String, String)>,
    rt: tokio::runtime::Runtime,
    admin: aws_sdk_sqs::Client,
    admin_s3: aws_sdk_s3::Client,
}

/// moto names each SQS batch call as its own action, where AWS authorizes
/// `SendMessageBatch` as `sqs:SendMessage` (and so on). Granting the batch
/// names beside the ones a policy grants makes moto judge as AWS does.
fn as_aws_authorizes_batches(mut policy: Value) -> Value {
    for statement in policy["Statement"].as_array_mut().unwrap() {
        let actions = match &statement["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_string()).collect(),
            other => panic!("unexpected Action {other}"),
        };
        let mut all = actions.clone();
        for action in &actions {
            if let Some(single) = [
                "sqs:SendMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
            ]
            .iter()
            .find(|a| *a == action)
            {
                all.push(format!("{single}Batch"));
            }
        }
        statement["Action"] = json!(all);
    }
    policy
}

/// Servers started by this process, to name their logs.
static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn moto_server() -> PathBuf {
    let path = std::env::var("MANDEL_MOTO_SERVER").expect(
        "MANDEL_MOTO_SERVER is not set: run with bash scripts/test.sh (localstack/moto.sh installs moto)",
    );
    PathBuf::from(path)
}

impl IamCloud {
    /// The ARNs the resources will have, for rendering the policies.
    pub fn arns(name: &str) -> Arns {
        let queue = |q: &str| format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-{q}");
        Arns {
            bucket: format!("arn:aws:s3:::{}", Self::bucket_name(name)),
            tiles_queue: queue("tiles"),
            tiles_dlq: queue("tiles-dlq"),
            stitch_queue: queue("stitch"),
            stitch_dlq: queue("stitch-dlq"),
            explore_queue: queue("explore"),
            explore_dlq: queue("explore-dlq"),
        }
    }

    fn bucket_name(name: &str) -> String {
        format!("{name}-jobs")
    }

    /// Starts moto and sets up the deployment `name` with one user per
    /// policy (and `admin`, allowed everything, for the test's own looks).
    pub fn start(name: &str, policies: BTreeMap<&str, Value>) -> IamCloud {
        let server = moto_server();
        // moto picks a free port itself (-p 0) and says which in its log:
        // choosing one here and handing it over races with other tests.
        let log_path = std::env::temp_dir().join(format!(
            "moto-{name}-{}-{}.log",
            std::process::id(),
            SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let log = std::fs::File::create(&log_path).expect("moto log");
        let mut running = Running::spawn(
            Command::new(&server)
                .args(["-H", "127.0.0.1", "-p", "0"])
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        );
        let started = Instant::now();
        let port = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(port) = text
                .split("Running on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                break port;
            }
            if let Some(status) = running.0.try_wait().unwrap() {
                panic!("moto exited ({status}): {text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not start in 60 s: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto is not listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        let bucket = Self::bucket_name(name);
        let url = |q: &str| format!("{endpoint}/{ACCOUNT}/{name}-{q}");
        let deployment = Deployment {
            version: 1,
            bucket: bucket.clone(),
            region: REGION.to_string(),
            tiles_queue_url: url("tiles"),
            tiles_dlq_url: url("tiles-dlq"),
            stitch_queue_url: url("stitch"),
            stitch_dlq_url: url("stitch-dlq"),
            explore_queue_url: Some(url("explore")),
            worker: FunctionLimits::WORKER,
            stitch: FunctionLimits::STITCH,
            fleet: Default::default(),
        };
        let mut users: serde_json::Map<String, Value> = policies
            .into_iter()
            .map(|(user, policy)| (user.to_string(), as_aws_authorizes_batches(policy)))
            .collect();
        users.insert(
            "admin".into(),
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        );
        let queue = |q: &str| {
            json!({"name": format!("{name}-{q}"), "visibility": VISIBILITY_SECS,
                   "dlq": format!("{name}-{q}-dlq"), "max_receive": MAX_RECEIVES})
        };
        let spec = json!({
            "endpoint": endpoint,
            "region": REGION,
            "bucket": bucket,
            "objects": { DEPLOYMENT_KEY: serde_json::to_string(&deployment).unwrap() },
            "queues": [queue("tiles"), queue("stitch"), queue("explore")],
            "users": users,
        });
        let python = server.parent().unwrap().join("python");
        let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("../localstack/moto_setup.py");
        let mut child = Command::new(python)
            .arg(setup)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running moto_setup.py");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "moto_setup.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Value = serde_json::from_slice(&out.stdout).expect("setup output");
        let users: BTreeMap<String, (String, String)> = created["users"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(u, c)| {
                (
                    u.clone(),
                    (
                        c["key"].as_str().unwrap().to_string(),
                        c["secret"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        let (key, secret) = users["admin"].clone();
        let admin = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(REGION))
                .endpoint_url(&endpoint)
                .credentials_provider(Credentials::new(key, secret, None, None, "test"))
                .build(),
        );
        let (key, secret) = users["admin"].clone();
        let admin_s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new(REGION))
                .endpoint_url(&endpoint)
                .force_path_style(true)
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    key, secret, None, None, "test",
                ))
                .build(),
        );
        IamCloud {
            _server: running,
            endpoint,
            bucket,
            deployment,
            users,
            rt: tokio::runtime::Runtime::new().unwrap(),
            admin,
            admin_s3,
        }
    }

    /// A command for one of the workspace's binaries, signed as `user`.
    pub fn command(&self, name: &str, user: &str) -> Command {
        let (key, secret) = &self.users[user];
        let mut cmd = Command::new(binary(name));
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("MANDEL_BUCKET", &self.bucket)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("MANDEL_TILES_QUEUE_URL")
            .env_remove("MANDEL_STITCH_QUEUE_URL")
            .env_remove("MANDEL_EXPLORE_QUEUE_URL");
        cmd
    }

    /// A poller of `name` (`mandel-worker` or `mandel-stitch`) signed as
    /// `user`, its JSON log in `log`.
    pub fn poller(&self, name: &str, user: &str, log: &Path) -> Running {
        self.poller_with(name, user, log, &[])
    }

    /// [`IamCloud::poller`] with more environment (`MANDEL_EXPLORE_QUEUE_URL`
    /// empty: a worker that does not consume the explorer's queue).
    pub fn poller_with(&self, name: &str, user: &str, log: &Path, env: &[(&str, &str)]) -> Running {
        let log = std::fs::File::create(log).expect("log file");
        Running::spawn(
            self.command(name, user)
                .envs(env.iter().copied())
                .args(["--poll"])
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
    }

    /// Receives up to 10 messages of a queue and lets them go (no delete):
    /// they come back after the visibility timeout, as redeliveries.
    pub fn receive_and_drop(&self, queue: &str) -> usize {
        self.rt
            .block_on(
                self.admin
                    .receive_message()
                    .queue_url(queue)
                    .max_number_of_messages(10)
                    .wait_time_seconds(5)
                    .send(),
            )
            .expect("receive as admin")
            .messages()
            .len()
    }

    /// Enqueues one-tile explorer jobs as `mandel-explore --bucket` does
    /// (params, then a message on the explore queue), as admin.
    pub fn plant_explore_tiles(&self, params: &[mandel_core::RenderParams]) {
        use mandel_pipeline::{JobId, Queue, TileMessage};
        let url = self
            .deployment
            .explore_queue_url
            .as_ref()
            .expect("an explore queue");
        let store = mandel_aws::S3Store::new(self.admin_s3.clone(), &self.bucket);
        let queue = mandel_aws::SqsQueue::new(self.admin.clone(), url);
        self.rt.block_on(async {
            let mut bodies = Vec::new();
            for p in params {
                let job = JobId::for_params(p);
                mandel_pipeline::records::write_params(&store, &job, p)
                    .await
                    .unwrap();
                let message = TileMessage {
                    explore: true,
                    ..TileMessage::new(job, mandel_core::TileId::new(0, 0))
                };
                bodies.push(serde_json::to_string(&message).unwrap());
            }
            queue.send_batch(&bodies).await.unwrap();
        });
    }

    /// How many of the one-tile jobs of `params` have their tile stored
    /// (listed as admin).
    pub fn stored_explore_tiles(&self, params: &[mandel_core::RenderParams]) -> usize {
        use mandel_pipeline::{JobId, ObjectStore};
        let store = mandel_aws::S3Store::new(self.admin_s3.clone(), &self.bucket);
        self.rt.block_on(async {
            let mut stored = 0;
            for p in params {
                let job = JobId::for_params(p);
                let tiles = store.list(&job.tiles_prefix()).await.unwrap();
                stored += usize::from(!tiles.is_empty());
            }
            stored
        })
    }

    /// Messages in a queue (by URL), visible or in flight.
    pub fn depth(&self, queue: &str) -> u64 {
        let (visible, in_flight) = crate::lane::queue_counts(&self.rt, &self.admin, queue);
        visible + in_flight
    }
}
