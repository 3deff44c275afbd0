//! Rendering tiles: the worker's use case.
//!
//! A worker takes a batch of tile messages (up to 10 from SQS), renders
//! them on a blocking pool bounded by the cores it has, uploads each blob as
//! soon as it is computed (so uploads overlap the remaining compute), and
//! then checks each job of the batch for completion
//! ([`tiles`](crate::tiles)): a job of up to a thousand tiles with one
//! listing of the job; a larger one row by row (it lists each row the
//! batch wrote to, marks those that are whole, and if it marked one, lists
//! the job's row markers). The check after the last upload sees every tile
//! (S3 listing is read-after-write consistent), and the check after the
//! last row marker sees every marker, so the stitch message is always sent.
//!
//! An explorer's tile request (`explore` in its message) is stored and
//! not checked for completion. Messages of a cancelled job are
//! acknowledged without work; a worker looks for a job's cancel marker at
//! most once every [`CANCEL_RECHECK`] while the job is not cancelled (its
//! completion listings count as looks), so the check costs a request per
//! second, not one per batch. A message
//! that fails on its last delivery (the queue's `maxReceiveCount`, after
//! which SQS moves it to the dead-letter queue) leaves a [`Failure`] record
//! in the job, so the client waiting for the job can stop and say why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mandel_core::{RenderParams, TileId};
use tokio::sync::Semaphore;
use tracing::{info, warn};

mod stop;

use crate::error::PipelineError;
use crate::events;
use crate::job::{Failed, Failure, JobId, ReferenceMessage, TileMessage, TileStat, WorkMessage};
use crate::job_cache::JobCache;
use crate::progress::Progress;
use crate::queue::{Delivery, Queue};
use crate::records::{self, send_stitch};
use crate::store::ObjectStore;
use crate::tiles;

use self::stop::{Batch, StopSignal};

/// What handling one tiles-queue message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TileOutcome {
    /// Its tile is stored: rendered now in `compute_us`, or found stored
    /// whole by this redelivery (0).
    Stored {
        job: JobId,
        tile: TileId,
        compute_us: u64,
    },
    /// A segment of its deep job's reference orbit is written (or the
    /// orbit was already whole).
    Reference { job: JobId, segment: u32 },
    /// Acknowledged without work: its job is cancelled.
    Skipped { job: JobId },
    /// Not done: the message comes back after its visibility timeout (and
    /// after its last delivery goes to the dead-letter queue). `reason` is
    /// what was logged and, on a last delivery, recorded for the client.
    Failed { reason: String },
}

/// What [`TileWorker::handle_batch`] did with a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Each message's outcome, by message id, in the batch's order.
    pub messages: Vec<(String, TileOutcome)>,
    /// The jobs whose last tiles this batch stored: it sent their stitch
    /// messages.
    pub completed: Vec<JobId>,
}

impl BatchOutcome {
    /// The ids of the failed messages: Lambda's `ReportBatchItemFailures`.
    pub fn failed_ids(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|(_, o)| matches!(o, TileOutcome::Failed { .. }))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// A tile computed and stored, not yet checked for job completion.
struct Stored {
    job: JobId,
    params: Arc<mandel_core::render::TileRenderer>,
    tile: TileId,
    compute_us: u64,
}

/// Renders tiles of any job: stateless apart from the params cache.
#[derive(Debug)]
pub struct TileWorker {
    store: Arc<dyn ObjectStore>,
    stitch_queue: Arc<dyn Queue>,
    jobs: JobCache,
    /// When each job was last seen not cancelled.
    /// By tokio's clock, so tests can run it paused.
    not_cancelled: Mutex<HashMap<JobId, tokio::time::Instant>>,
    worker_id: String,
    /// When this worker started (Unix ms): its process's cold start.
    boot_ms: u64,
    /// Kernel runs at once: one per core, so a batch keeps every core busy
    /// while finished tiles upload.
    compute: Semaphore,
    /// The tiles queue's `maxReceiveCount`: a failure on this delivery is
    /// final. `None`: the queue has no dead-letter queue and retries forever.
    max_receive_count: Option<u32>,
}

impl TileWorker {
    /// A worker that computes as many tiles at once as the machine has cores.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        stitch_queue: Arc<dyn Queue>,
        worker_id: impl Into<String>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        TileWorker {
            store,
            stitch_queue,
            jobs: JobCache::new(),
            not_cancelled: Mutex::default(),
            worker_id: worker_id.into(),
            boot_ms: crate::job::unix_ms(),
            compute: Semaphore::new(cores),
            max_receive_count: None,
        }
    }

    /// Records a [`Failure`] when a message fails its `n`th delivery, the
    /// last before the dead-letter queue.
    pub fn with_max_receive_count(mut self, n: Option<u32>) -> Self {
        self.max_receive_count = n;
        self
    }

    /// Handles a batch of tiles-queue messages: every message's outcome,
    /// and the jobs it completed. A bad message fails only itself; a
    /// failed completion check fails the job's messages of this batch, so
    /// their redelivery repeats the check. Each job's completion check
    /// runs as soon as that job's tiles are stored. The SQS trigger deletes
    /// all but [`BatchOutcome::failed_ids`].
    ///
    /// With a `deadline` (the Lambda invocation's), no tile is started and
    /// every tile still computing is abandoned shortly before it
    /// (a tenth of the invocation, 1 to 10 s); their messages fail and come back, while the
    /// tiles finished in time are kept. The same happens if the returned
    /// future is dropped (the invocation killed).
    pub async fn handle_batch(
        &self,
        batch: &[Delivery],
        deadline: Option<Instant>,
    ) -> BatchOutcome {
        let started = Instant::now();
        let stop =
            StopSignal::new(deadline.map(|d| d - crate::deployment::stop_margin(d - started)));
        let run = Batch {
            stop,
            started_ms: crate::job::unix_ms(),
        };
        let parsed: Vec<_> = batch.iter().map(|d| parse(&d.body)).collect();
        let cancelled = self.cancelled_jobs(&parsed).await;
        let mut outcomes: BTreeMap<&str, TileOutcome> = BTreeMap::new();
        let mut jobs: BTreeMap<&JobId, Vec<(&Delivery, &TileMessage)>> = BTreeMap::new();
        let mut references = Vec::new();
        for (d, msg) in batch.iter().zip(&parsed) {
            match msg {
                // A cancelled job's messages are acknowledged without work.
                Ok(m) if cancelled.contains(m.job()) => {
                    let skipped = TileOutcome::Skipped {
                        job: m.job().clone(),
                    };
                    outcomes.insert(&d.message_id, skipped);
                }
                Ok(WorkMessage::Tile(m)) => jobs.entry(&m.job).or_default().push((d, m)),
                Ok(WorkMessage::Reference(m)) => references.push((d, m)),
                Err(e) => {
                    warn!(message_id = %d.message_id, error = %e, "tile message failed");
                    let reason = e.to_string();
                    outcomes.insert(&d.message_id, TileOutcome::Failed { reason });
                }
            }
        }
        let (handled, segments) = futures::future::join(
            futures::future::join_all(
                jobs.into_iter()
                    .map(|(job, items)| self.handle_job(job, items, &run)),
            ),
            futures::future::join_all(
                references
                    .into_iter()
                    .map(|(d, m)| self.reference_delivery(d, m, &run)),
            ),
        )
        .await;
        outcomes.extend(segments);
        let mut completed = Vec::new();
        for (job_outcomes, job_completed) in handled {
            outcomes.extend(job_outcomes);
            completed.extend(job_completed);
        }
        let result = BatchOutcome {
            messages: batch
                .iter()
                .map(|d| {
                    let outcome = outcomes
                        .remove(d.message_id.as_str())
                        .expect("every message handled");
                    (d.message_id.clone(), outcome)
                })
                .collect(),
            completed,
        };
        let count =
            |f: fn(&TileOutcome) -> bool| result.messages.iter().filter(|(_, o)| f(o)).count();
        info!(
            tiles = count(|o| matches!(o, TileOutcome::Stored { .. })),
            skipped = count(|o| matches!(o, TileOutcome::Skipped { .. })),
            failed = count(|o| matches!(o, TileOutcome::Failed { .. })),
            stopped = run.stop.is_set(),
            ms = started.elapsed().as_millis() as u64,
            message = events::TILE_BATCH_DONE,
        );
        result
    }

    /// Renders one job's tiles of a batch, then checks the job for
    /// completion: each message's outcome, and the job if this completed
    /// it.
    async fn handle_job<'d>(
        &self,
        job: &JobId,
        items: Vec<(&'d Delivery, &TileMessage)>,
        batch: &Batch,
    ) -> (Vec<(&'d str, TileOutcome)>, Option<JobId>) {
        let results = futures::future::join_all(
            items
                .iter()
                .map(|(d, msg)| self.render_delivery(d, msg, batch)),
        )
        .await;
        let mut outcomes = Vec::new();
        let mut stored = Vec::new();
        let mut rows = BTreeSet::new();
        let mut params = None;
        for ((d, _), result) in items.iter().zip(results) {
            match result {
                Ok(s) => {
                    rows.insert(s.tile.row);
                    // The job's renderer (params and all): shared, not copied.
                    params = Some(s.params);
                    stored.push(*d);
                    outcomes.push((
                        d.message_id.as_str(),
                        TileOutcome::Stored {
                            job: s.job,
                            tile: s.tile,
                            compute_us: s.compute_us,
                        },
                    ));
                }
                Err(reason) => {
                    outcomes.push((d.message_id.as_str(), TileOutcome::Failed { reason }))
                }
            }
        }
        let Some(params) = params else {
            return (outcomes, None);
        };
        // The explorer wants its tiles, not a picture: nothing to complete.
        if items.iter().all(|(_, m)| m.explore) {
            return (outcomes, None);
        }
        match self.complete_if_done(job, params.params(), &rows).await {
            Ok(done) => (outcomes, done.then(|| job.clone())),
            Err(e) => {
                warn!(job = %job, error = %e, "completion check failed");
                // The tiles are stored; only the stitch trigger is lost if
                // this was the last try, or if a policy refuses it (no
                // retry helps). Say so, so the client stops and a re-run
                // re-triggers it.
                let last = stored.iter().find(|d| self.is_last(d));
                if let Some(d) = last.or(stored.first().filter(|_| e.is_denied())) {
                    self.record(job, Failed::Stitch, d, &e).await;
                }
                let reason = format!("checking job {job} for completion: {e}");
                for (_, outcome) in &mut outcomes {
                    if matches!(outcome, TileOutcome::Stored { .. }) {
                        *outcome = TileOutcome::Failed {
                            reason: reason.clone(),
                        };
                    }
                }
                (outcomes, None)
            }
        }
    }

    fn is_last(&self, d: &Delivery) -> bool {
        d.is_final(self.max_receive_count)
    }

    /// The jobs of the batch that are cancelled: a HEAD per job not seen
    /// uncancelled in the last [`CANCEL_RECHECK`]. Only "not cancelled" is
    /// remembered: a job submitted again after a cancel is never skipped.
    /// If the check itself fails the tile is rendered anyway (harmless).
    async fn cancelled_jobs(
        &self,
        parsed: &[Result<WorkMessage, PipelineError>],
    ) -> BTreeSet<JobId> {
        let jobs: BTreeSet<&JobId> = parsed.iter().flatten().map(|m| m.job()).collect();
        let mut cancelled = BTreeSet::new();
        for job in jobs {
            let seen = self.not_cancelled.lock().unwrap().get(job).copied();
            if seen.is_some_and(|at| at.elapsed() < CANCEL_RECHECK) {
                continue;
            }
            match self.store.head(&job.cancelled_key()).await {
                Ok(Some(_)) => {
                    cancelled.insert(job.clone());
                }
                Ok(None) => self.saw_cancelled(job, false),
                Err(e) => warn!(%job, error = %e, "cancel check failed; rendering anyway"),
            }
        }
        cancelled
    }

    /// Remembers what a look at `job`'s cancel marker showed. Looks older
    /// than [`CANCEL_RECHECK`] are forgotten: a worker that serves an
    /// explorer sees a new one-tile job per tile.
    fn saw_cancelled(&self, job: &JobId, cancelled: bool) {
        let mut seen = self.not_cancelled.lock().unwrap();
        seen.retain(|_, at| at.elapsed() < CANCEL_RECHECK);
        if cancelled {
            seen.remove(job);
        } else {
            seen.insert(job.clone(), tokio::time::Instant::now());
        }
    }

    /// Renders and stores one message's tile; why not, if it failed. A
    /// failure is logged and, if final, recorded in the job.
    async fn render_delivery(
        &self,
        d: &Delivery,
        msg: &TileMessage,
        batch: &Batch,
    ) -> Result<Stored, String> {
        match self.store_tile(msg, d.receive_count, batch).await {
            Ok(s) => Ok(s),
            Err(e) => {
                warn!(message_id = %d.message_id, job = %msg.job, tile = %msg.tile(), error = %e,
                      attempt = d.receive_count, "tile message failed");
                match &e {
                    // No tile of the job can render: say so at once.
                    PipelineError::BadStoredParams { .. } => {
                        self.record(&msg.job, Failed::Job, d, &e).await
                    }
                    // A policy refuses a call: no retry helps, so the client
                    // hears of it at once.
                    e if e.is_denied() => {
                        self.record(&msg.job, Failed::Tile(msg.tile()), d, e).await
                    }
                    // An unknown job or a tile outside the grid: nobody
                    // waits for it, and nothing is written for it.
                    e if e.is_permanent() => {}
                    _ if self.is_last(d) => {
                        self.record(&msg.job, Failed::Tile(msg.tile()), d, &e).await
                    }
                    _ => {}
                }
                Err(e.to_string())
            }
        }
    }

    /// Computes one segment of a deep job's reference orbit (on a core, and
    /// stopping with the batch); a failure is logged and, if final or
    /// permanent, recorded as the job's (no tile can render without it).
    async fn reference_delivery<'d>(
        &self,
        d: &'d Delivery,
        msg: &ReferenceMessage,
        batch: &Batch,
    ) -> (&'d str, TileOutcome) {
        let job = &msg.job;
        let result = async {
            let params = records::read_params(&*self.store, job).await?;
            let _core = self.compute.acquire().await.expect("never closed");
            let store = &*self.store;
            crate::reference::compute_segment(store, job, &params, msg.reference, batch.stop.flag())
                .await
        }
        .await;
        let outcome = match result {
            Ok(_) => TileOutcome::Reference {
                job: job.clone(),
                segment: msg.reference,
            },
            Err(e) => {
                warn!(message_id = %d.message_id, %job, segment = msg.reference, error = %e,
                      attempt = d.receive_count, "reference segment failed");
                if e.is_permanent() || self.is_last(d) {
                    self.record(job, Failed::Job, d, &e).await;
                }
                TileOutcome::Failed {
                    reason: e.to_string(),
                }
            }
        };
        (d.message_id.as_str(), outcome)
    }

    /// Writes a failure record; best effort (the message fails either way).
    async fn record(&self, job: &JobId, what: Failed, d: &Delivery, e: &PipelineError) {
        let failure = Failure {
            what,
            reason: e.to_string(),
            attempts: d.receive_count,
            worker: self.worker_id.clone(),
        };
        if let Err(e) = records::record_failure(&*self.store, job, &failure).await {
            warn!(%job, error = %e, "could not record the failure");
        }
    }

    /// Computes the tile and stores its blob: a keyed overwrite with the
    /// same bytes, so a redelivery is harmless. A redelivered tile that is
    /// already stored whole (its first delivery stored it, then ran out of
    /// time or died before acknowledging) is not rendered again.
    async fn store_tile(
        &self,
        msg: &TileMessage,
        receive_count: u32,
        batch: &Batch,
    ) -> Result<Stored, PipelineError> {
        let stop = &batch.stop;
        let renderer = self.jobs.get(&*self.store, &msg.job).await?;
        let params = renderer.params();
        let tile = msg.tile();
        if !params.contains(tile) {
            return Err(PipelineError::TileOutOfRange {
                job: msg.job.clone(),
                tile,
                tiles_per_side: params.tiles_per_side,
            });
        }
        let stored = |compute_us| Stored {
            job: msg.job.clone(),
            params: Arc::clone(&renderer),
            tile,
            compute_us,
        };
        if receive_count > 1 && tiles::is_stored(&*self.store, &msg.job, tile, params).await? {
            return Ok(stored(0));
        }
        let unfinished = || PipelineError::Unfinished {
            job: msg.job.clone(),
            tile,
        };
        let (counts, compute_us, started_ms) = {
            let _core = self.compute.acquire().await.expect("never closed");
            if stop.is_set() {
                return Err(unfinished());
            }
            let flag = stop.flag();
            let inline = tile_work(params) <= INLINE_WORK;
            let renderer = Arc::clone(&renderer);
            let render = move || {
                let (started, started_ms) = (Instant::now(), crate::job::unix_ms());
                let counts = renderer.render_tile_until(tile, &flag)?;
                Some((counts, started.elapsed().as_micros() as u64, started_ms))
            };
            // A tiny tile costs less than handing it to another thread.
            let rendered = if inline {
                render()
            } else {
                tokio::task::spawn_blocking(render)
                    .await
                    .expect("tile kernel panicked")
            };
            rendered.ok_or_else(unfinished)?
        };
        let stat = TileStat {
            row: tile.row,
            col: tile.col,
            compute_us,
            worker: self.worker_id.clone(),
            started_ms,
            batch_ms: batch.started_ms,
            boot_ms: self.boot_ms,
        };
        tiles::put_tile(&*self.store, &msg.job, params, &counts, &stat).await?;
        Ok(stored(compute_us))
    }

    /// Sends the stitch message if every tile of the job is stored, as
    /// [`Progress::after_storing`] sees it after this batch stored tiles
    /// in `rows`. Returns whether the job is complete.
    async fn complete_if_done(
        &self,
        job: &JobId,
        params: &RenderParams,
        rows: &BTreeSet<u32>,
    ) -> Result<bool, PipelineError> {
        let seen = Progress::after_storing(&*self.store, job, params, rows.iter().copied()).await?;
        let Some(seen) = seen else {
            return Ok(false);
        };
        if let Some(listing) = seen.listing() {
            // The job's listing shows its cancel marker: a look for free.
            self.saw_cancelled(job, listing.has(&job.cancelled_key()));
        }
        let complete = seen.complete();
        if complete {
            send_stitch(&*self.stitch_queue, job).await?;
        }
        Ok(complete)
    }
}

/// How long a worker trusts that a job it saw was not cancelled: a cancel
/// stops the job's rendering within this long.
pub const CANCEL_RECHECK: Duration = Duration::from_secs(1);

/// The most iterations a tile can run (every pixel to `max_iter`).
fn tile_work(params: &RenderParams) -> u64 {
    params.pixels_per_tile() as u64 * u64::from(params.max_iter)
}

/// Tiles of at most this much work (about half a millisecond) render on
/// the async thread: the hand-off to the blocking pool would cost more.
const INLINE_WORK: u64 = 1 << 20;

fn parse(body: &str) -> Result<WorkMessage, PipelineError> {
    serde_json::from_str(body).map_err(|e| PipelineError::BadMessage {
        reason: e.to_string(),
    })
}
