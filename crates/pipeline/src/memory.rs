//! In-memory adapters: the embedded mode's store and queue, and the test
//! doubles for everything else.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::queue::{Delivery, Queue, QueueError};
use crate::store::{
    Metadata, Object, ObjectMeta, ObjectStore, OpenUploads, PartTag, PutMode, PutOutcome,
    StoreError, UploadId, validate_key, validate_metadata,
};

/// An object store in a `BTreeMap`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Object>>,
    uploads: OpenUploads,
    /// The parts of the open uploads, by upload id and number.
    parts: Mutex<BTreeMap<(String, u32), Bytes>>,
    next_upload: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns an upload's parts, by number.
    fn drop_parts(&self, upload: &UploadId) -> BTreeMap<u32, Bytes> {
        let mut parts = self.parts.lock().unwrap();
        let mine: Vec<_> = parts
            .range((upload.id.clone(), 0)..=(upload.id.clone(), u32::MAX))
            .map(|(k, _)| k.clone())
            .collect();
        mine.into_iter()
            .map(|k| (k.1, parts.remove(&k).expect("listed")))
            .collect()
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        validate_key(key)?;
        let objects = self.objects.lock().unwrap();
        objects
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_string(),
            })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        Ok(crate::store::slice_range(&self.get(key).await?.body, range))
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        validate_key(key)?;
        validate_metadata(key, &metadata)?;
        let mut objects = self.objects.lock().unwrap();
        if mode == PutMode::Create && objects.contains_key(key) {
            return Ok(PutOutcome::AlreadyExists);
        }
        objects.insert(key.to_string(), Object { body, metadata });
        Ok(PutOutcome::Written)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        validate_key(key)?;
        let objects = self.objects.lock().unwrap();
        Ok(objects.get(key).map(|o| ObjectMeta {
            key: key.to_string(),
            size: o.body.len() as u64,
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| ObjectMeta {
                key: k.clone(),
                size: o.body.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }

    async fn start_upload(&self, key: &str, part_size: usize) -> Result<UploadId, StoreError> {
        validate_key(key)?;
        let id = self.next_upload.fetch_add(1, Ordering::Relaxed).to_string();
        let upload = UploadId {
            key: key.to_string(),
            id,
            part_size,
        };
        self.uploads.open(&upload);
        Ok(upload)
    }

    async fn put_part(
        &self,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<PartTag, StoreError> {
        self.uploads.check_part(upload, number, body.len())?;
        let len = body.len();
        self.parts
            .lock()
            .unwrap()
            .insert((upload.id.clone(), number), body);
        self.uploads.record_part(upload, number, len)
    }

    async fn complete_upload(
        &self,
        upload: &UploadId,
        parts: Vec<PartTag>,
    ) -> Result<(), StoreError> {
        let len = self.uploads.complete(upload, &parts)?;
        let mut stored = self.drop_parts(upload);
        let mut body = Vec::with_capacity(len as usize);
        for part in &parts {
            body.extend_from_slice(&stored.remove(&part.number).expect("checked complete"));
        }
        self.objects.lock().unwrap().insert(
            upload.key.clone(),
            Object {
                body: body.into(),
                metadata: Metadata::new(),
            },
        );
        Ok(())
    }

    async fn abort_upload(&self, upload: &UploadId) -> Result<(), StoreError> {
        self.uploads.close(upload);
        self.drop_parts(upload);
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    receive_count: u32,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<Message>,
    in_flight: HashMap<String, (Message, Instant)>,
}

/// An SQS-like queue in memory: at-least-once delivery with a visibility
/// timeout. A received message is hidden until it is deleted or its
/// timeout passes; then it is delivered again with a higher receive count.
#[derive(Debug)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
    notify: Notify,
    visibility_timeout: Duration,
    next_id: AtomicU64,
    /// Most messages waiting at once: a send waits for room (unlike SQS,
    /// which holds any number), so an embedded million-tile job does not
    /// hold a million messages.
    capacity: usize,
    room: Notify,
}

impl MemoryQueue {
    pub fn new(visibility_timeout: Duration) -> Self {
        Self::bounded(visibility_timeout, usize::MAX)
    }

    /// A queue whose sends wait while `capacity` messages are waiting.
    pub fn bounded(visibility_timeout: Duration, capacity: usize) -> Self {
        MemoryQueue {
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
            visibility_timeout,
            next_id: AtomicU64::new(0),
            capacity: capacity.max(1),
            room: Notify::new(),
        }
    }

    /// Messages waiting or in flight.
    pub fn len(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.ready.len() + state.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes up to `max` visible messages, first returning expired ones to
    /// the queue. Returns the time of the next expiry when nothing is ready.
    fn take(&self, max: usize) -> (Vec<Delivery>, Option<Instant>) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        let expired: Vec<String> = state
            .in_flight
            .iter()
            .filter(|(_, (_, due))| *due <= now)
            .map(|(r, _)| r.clone())
            .collect();
        for receipt in expired {
            let (msg, _) = state.in_flight.remove(&receipt).expect("listed just above");
            state.ready.push_back(msg);
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(mut msg) = state.ready.pop_front() else {
                break;
            };
            msg.receive_count += 1;
            let receipt = format!("{}#{}", msg.id, self.id());
            out.push(Delivery {
                message_id: msg.id.clone(),
                receipt: receipt.clone(),
                body: msg.body.clone(),
                receive_count: msg.receive_count,
            });
            state
                .in_flight
                .insert(receipt, (msg, now + self.visibility_timeout));
        }
        let next_expiry = state.in_flight.values().map(|(_, due)| *due).min();
        if !out.is_empty() {
            self.room.notify_waiters();
        }
        (out, next_expiry)
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        loop {
            // Register interest before looking, so a receive in between is
            // not missed.
            let room = self.room.notified();
            if self.state.lock().unwrap().ready.len() < self.capacity {
                break;
            }
            room.await;
        }
        {
            let mut state = self.state.lock().unwrap();
            for body in bodies {
                let id = format!("m{}", self.id());
                state.ready.push_back(Message {
                    id,
                    body: body.clone(),
                    receive_count: 0,
                });
            }
        }
        self.notify.notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let deadline = Instant::now() + wait;
        loop {
            // Register interest before looking, so a send in between is not missed.
            let notified = self.notify.notified();
            let (got, next_expiry) = self.take(max.max(1));
            if !got.is_empty() {
                return Ok(got);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let until = next_expiry.map_or(deadline, |e| e.min(deadline));
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        // Like SQS, deleting with a stale receipt is not an error.
        let mut state = self.state.lock().unwrap();
        for receipt in receipts {
            state.in_flight.remove(receipt);
        }
        Ok(())
    }
}
