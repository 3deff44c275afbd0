//! The glue between Lambda's SQS trigger and a batch handler, and the same
//! trigger emulated on this machine ([`poll_until_signal`]).
//!
//! A batch handler takes the received messages and returns the ids of those
//! that failed, which is exactly Lambda's `ReportBatchItemFailures`
//! contract: the trigger deletes the rest and leaves the failures to the
//! visibility timeout (and, after `maxReceiveCount`, the DLQ).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use mandel_pipeline::{Delivery, FunctionLimits, PipelineError, Queue, invoke};

use crate::{AwsClients, Cloud, bucket_from};

/// Which of the deployment's two functions a binary is: which queue it
/// consumes and which limits it runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Worker,
    Stitch,
}

/// The command line both function binaries take.
#[derive(Debug, clap::Args)]
pub struct FunctionArgs {
    /// Long-poll the function's queue from this machine instead of serving
    /// Lambda's runtime API.
    #[arg(long)]
    pub poll: bool,
    /// The deployment's bucket [default: $MANDEL_BUCKET].
    #[arg(long)]
    pub bucket: Option<String>,
}

/// What a function's handler is built from: the deployment, the
/// `maxReceiveCount` of its queue (a failure on that delivery is final,
/// and recorded for the client), and a name for this process.
pub struct Setup {
    pub cloud: Cloud,
    pub max_receive_count: Option<u32>,
    /// The Lambda log stream, or `poller-<pid>`: recorded with each tile.
    pub process_name: String,
}

/// A function's whole `main`: logging, connecting to the bucket's
/// deployment, building the batch handler from the [`Setup`], then
/// serving Lambda (or, with `--poll`, polling in batches of `poll_batch`)
/// under the function's limits. Polling, each queue the function consumes
/// gets a handler of its own, as each Lambda trigger's invocations run in
/// sandboxes of their own.
pub async fn serve<B, F, Fut>(
    function: Function,
    args: FunctionArgs,
    poll_batch: usize,
    build: B,
) -> Result<(), lambda_runtime::Error>
where
    B: Fn(&Setup) -> F,
    F: Fn(Vec<Delivery>, Option<Instant>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    lambda_runtime::tracing::init_default_subscriber();
    let cloud = Cloud::connect(&AwsClients::from_env().await, &bucket_from(args.bucket)?).await?;
    // Each role may read the attributes of the queue it consumes only.
    let (max_receive_count, limits) = match function {
        Function::Worker => (
            cloud.tiles_max_receive_count().await?,
            cloud.deployment.worker,
        ),
        Function::Stitch => (
            cloud.stitch_max_receive_count().await?,
            cloud.deployment.stitch,
        ),
    };
    let process_name = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| {
        let mode = if args.poll { "poller" } else { "lambda" };
        format!("{mode}-{}", std::process::id())
    });
    let setup = Setup {
        cloud,
        max_receive_count,
        process_name,
    };
    // The worker consumes the explorer's queue too, through a trigger of
    // its own (infra/sqs.tf says why).
    let queues: Vec<&dyn Queue> = match function {
        Function::Worker => std::iter::once(&*setup.cloud.ports.tiles)
            .chain(setup.cloud.explore.as_deref())
            .collect(),
        Function::Stitch => vec![&*setup.cloud.ports.stitch],
    };
    let handlers = match args.poll {
        true => queues.into_iter().map(|q| (q, build(&setup))).collect(),
        false => vec![(queues[0], build(&setup))],
    };
    run_function(handlers, limits, args.poll.then_some(poll_batch)).await
}

/// Runs a function: as a Lambda serving the runtime API (with the first
/// handler), or with `poll_batch` as an event-source mapping per queue,
/// each with its handler (batches of that many messages, the queues
/// polled side by side). Either way its memory is capped and each batch
/// is an invocation with the function's timeout.
pub async fn run_function<F, Fut>(
    handlers: Vec<(&dyn Queue, F)>,
    limits: FunctionLimits,
    poll_batch: Option<usize>,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Vec<Delivery>, Option<Instant>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    mandel_pipeline::process::return_freed_memory();
    cap_memory(limits)?;
    if let Some(batch) = poll_batch {
        let loops = handlers
            .into_iter()
            .map(|(queue, handle)| poll_until_signal(queue, batch, limits, handle));
        for stats in futures::future::join_all(loops).await {
            stats?;
        }
        return Ok(());
    }
    let (_, handle) = handlers.into_iter().next().expect("a handler");
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: LambdaEvent<SqsEvent>| async {
            Ok::<_, lambda_runtime::Error>(handle_event(event, limits, &handle).await)
        },
    ))
    .await
}

/// Runs a batch handler on an SQS event and reports only the failed ids.
/// The handler gets the invocation's deadline: Lambda's, or `limits`'
/// timeout from now if that is sooner (as under `cargo lambda watch`, which
/// enforces none), and is stopped when it passes.
pub async fn handle_event<F, Fut>(
    event: LambdaEvent<SqsEvent>,
    limits: FunctionLimits,
    handle: F,
) -> SqsBatchResponse
where
    F: FnOnce(Vec<Delivery>, Option<Instant>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let now = Instant::now();
    let lambda_says = Duration::from_millis(event.context.deadline).checked_sub(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let timeout = lambda_says.map_or(limits.timeout(), |d| d.min(limits.timeout()));
    let batch = event.payload.records.into_iter().map(delivery).collect();
    let mut response = SqsBatchResponse::default();
    for id in invoke(batch, Some(now + timeout), handle).await {
        response.add_failure(id);
    }
    response
}

/// Caps this process's memory at `limits.memory_mb`, as Lambda caps a
/// function's: past it an allocation fails and the process aborts, like a
/// function killed for running out of memory. The cap is on the data
/// segment (heap and private writable mappings, `RLIMIT_DATA`), the
/// nearest a process can set on itself to Lambda's limit on its memory.
pub fn cap_memory(limits: FunctionLimits) -> std::io::Result<()> {
    let bytes = u64::from(limits.memory_mb) << 20;
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The queue message inside an SQS event record.
fn delivery(record: SqsMessage) -> Delivery {
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    Delivery {
        message_id: record.message_id.unwrap_or_default(),
        receipt: record.receipt_handle.unwrap_or_default(),
        body: record.body.unwrap_or_default(),
        receive_count,
    }
}

/// The SQS event Lambda's trigger would deliver for `batch`.
pub fn sqs_event(batch: &[Delivery], queue_arn: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = batch
        .iter()
        .map(|d| {
            let mut m = SqsMessage::default();
            m.message_id = Some(d.message_id.clone());
            m.receipt_handle = Some(d.receipt.clone());
            m.body = Some(d.body.clone());
            m.attributes.insert(
                "ApproximateReceiveCount".to_string(),
                d.receive_count.to_string(),
            );
            m.event_source = Some("aws:sqs".to_string());
            m.event_source_arn = Some(queue_arn.to_string());
            m
        })
        .collect();
    event
}

/// The local event-source mapping: long-polls `queue` in batches of
/// `batch` and runs `handle` on each until SIGINT or SIGTERM, deleting
/// successes and leaving failures to the visibility timeout, as Lambda's SQS
/// trigger does. Each batch is an invocation with the function's timeout
/// (`limits`): stopped at its deadline, its messages left for redelivery.
pub async fn poll_until_signal<F, Fut>(
    queue: &dyn mandel_pipeline::Queue,
    batch: usize,
    limits: FunctionLimits,
    handle: F,
) -> Result<mandel_pipeline::PollStats, PipelineError>
where
    F: Fn(Vec<Delivery>, Option<Instant>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop.send(true);
    });
    let config = mandel_pipeline::PollConfig {
        batch,
        wait: Duration::from_secs(20),
        timeout: Some(limits.timeout()),
    };
    mandel_pipeline::poll(queue, config, shutdown, handle).await
}
