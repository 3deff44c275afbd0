//! The object-store port. The contract is on [`ObjectStore`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

/// User metadata stored with an object (S3 `x-amz-meta-*`). Keys are lower
/// case ASCII letters, digits and `-`.
pub type Metadata = BTreeMap<String, String>;

/// Any error from a backend's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub body: Bytes,
    pub metadata: Metadata,
}

/// A key and its size, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// The smallest part S3 accepts in a multipart upload, but for the last.
pub const MIN_PART_SIZE: usize = 5 << 20;

/// The most parts S3 accepts in one multipart upload.
pub const MAX_PARTS: u32 = 10_000;

/// An upload in progress, as [`ObjectStore::start_upload`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadId {
    pub key: String,
    pub id: String,
    pub part_size: usize,
}

/// A part put, as [`ObjectStore::complete_upload`] needs it: its number
/// and the store's tag for it (S3's ETag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartTag {
    pub number: u32,
    pub tag: String,
}

/// How a put treats an existing object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Write only if the key is free (put-if-absent).
    Create,
}

/// What a put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// [`PutMode::Create`] found the key taken; nothing was written.
    AlreadyExists,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// A multipart upload call that breaks the contract (a part number out
    /// of range, a short part that is not last, an unknown upload).
    #[error("multipart upload to {key} refused: {reason}")]
    InvalidUpload { key: String, reason: &'static str },
    /// The caller's IAM policy does not allow `action` on the key: no
    /// retry can help, the job cannot go on until the policy is fixed.
    #[error(
        "access denied: {action} on {key} is not allowed by the caller's IAM policy ({source})"
    )]
    Denied {
        key: String,
        action: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("storage error on {key}: {source}")]
    Backend {
        key: String,
        #[source]
        source: BoxError,
        transient: bool,
    },
}

impl StoreError {
    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                transient: true,
                ..
            }
        )
    }

    pub fn invalid_upload(upload: &UploadId, reason: &'static str) -> Self {
        StoreError::InvalidUpload {
            key: upload.key.clone(),
            reason,
        }
    }

    pub fn backend(key: &str, source: impl Into<BoxError>, transient: bool) -> Self {
        StoreError::Backend {
            key: key.to_string(),
            source: source.into(),
            transient,
        }
    }
}

/// The object-store port.
///
/// # Contract
///
/// Every adapter ([`MemoryStore`](crate::MemoryStore),
/// [`FsStore`](crate::FsStore), S3) behaves the same, and the conformance
/// suite (`conformance`, with the `test-support` feature, run by each adapter's tests)
/// holds each of them to it:
///
/// - Keys are `/`-separated segments of printable ASCII; empty, `.` and `..`
///   segments, a leading `/` and control characters are refused with
///   [`StoreError::InvalidKey`].
/// - [`put`](ObjectStore::put) with [`PutMode::Overwrite`] replaces the whole
///   object atomically: a reader sees the old bytes or the new, never a mix.
/// - With [`PutMode::Create`] the write happens only if no object has the key;
///   of several concurrent creators exactly one gets [`PutOutcome::Written`],
///   the others [`PutOutcome::AlreadyExists`] (S3 `If-None-Match: *`).
/// - [`get`](ObjectStore::get) returns the body and the user metadata given at
///   write; a missing key is [`StoreError::NotFound`].
/// - [`get_range`](ObjectStore::get_range) returns the bytes of the body in
///   `start..end`, cut at the body's end (so a range past the end gives
///   fewer bytes, or none), in one request; a missing key is
///   [`StoreError::NotFound`]. Readers bound what they read with it.
/// - [`list`](ObjectStore::list) is strongly consistent (read-after-write, as
///   S3 is) and returns every key under the prefix, sorted, with its size.
/// - [`delete`](ObjectStore::delete) removes the object; deleting a key
///   that has no object is not an error (so a retried delete is harmless).
/// - A multipart upload ([`start_upload`](ObjectStore::start_upload),
///   [`put_part`](ObjectStore::put_part),
///   [`complete_upload`](ObjectStore::complete_upload)) writes an object
///   too big to hold in memory, part by part, as S3's multipart upload does:
///   parts are numbered from 1 (at most [`MAX_PARTS`]), may be put in any
///   order and concurrently, a part put again replaces itself, and every
///   part but the last has the upload's `part_size` (at least
///   [`MIN_PART_SIZE`]). Nothing is visible at the key until the upload
///   completes, which replaces the object atomically, with no metadata;
///   [`abort_upload`](ObjectStore::abort_upload) discards the parts.
/// - [`download`](ObjectStore::download) writes an object's body to a
///   local file, byte for byte as [`get`](ObjectStore::get) returns it.
/// - Errors that a retry may cure are marked [`StoreError::is_transient`];
///   a refusal by the backend's access policy is [`StoreError::Denied`],
///   naming the action that was refused.
#[async_trait]
pub trait ObjectStore: Debug + Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Object, StoreError>;

    /// The body's bytes in `range`, cut at its end (S3's ranged GET).
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError>;

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError>;

    /// The object's size, or `None` if there is none.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// The folders right under `prefix` (which ends with `/`): for every
    /// key below it with a further `/`, the part between the prefix and
    /// that `/`; sorted, each once. This default lists every key below;
    /// S3 asks for the common prefixes instead, so listing the jobs of a
    /// bucket does not list their tiles.
    async fn list_children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .list(prefix)
            .await?
            .iter()
            .filter_map(|m| m.key.strip_prefix(prefix)?.split_once('/'))
            .map(|(name, _)| name.to_string())
            .collect();
        // A folder's keys are contiguous in the listing, but `x-a/` sorts
        // before `x/`.
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// Removes the object, if there is one.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Starts a multipart upload to `key` whose parts, all but the last,
    /// have `part_size` bytes.
    async fn start_upload(&self, key: &str, part_size: usize) -> Result<UploadId, StoreError>;

    /// Puts part `number` (from 1) of the upload.
    async fn put_part(
        &self,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<PartTag, StoreError>;

    /// Makes the object from `parts` (every part, in order).
    async fn complete_upload(
        &self,
        upload: &UploadId,
        parts: Vec<PartTag>,
    ) -> Result<(), StoreError>;

    /// Discards the upload's parts; the key is left as it was.
    async fn abort_upload(&self, upload: &UploadId) -> Result<(), StoreError>;

    /// Writes the object's body to the local file `dest` (replacing it)
    /// and returns its size. This default reads the body whole; adapters
    /// that can stream it, or link a file they hold, do that instead.
    async fn download(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let body = self.get(key).await?.body;
        tokio::fs::write(dest, &body).await.map_err(|e| {
            StoreError::backend(key, format!("writing {}: {e}", dest.display()), false)
        })?;
        Ok(body.len() as u64)
    }
}

/// A shared store is a store (so wrappers can hold an `Arc<dyn ObjectStore>`).
#[async_trait]
impl<T: ObjectStore + ?Sized> ObjectStore for std::sync::Arc<T> {
    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        (**self).get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        (**self).get_range(key, range).await
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        (**self).put(key, body, metadata, mode).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        (**self).head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        (**self).list(prefix).await
    }

    async fn list_children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        (**self).list_children(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }

    async fn start_upload(&self, key: &str, part_size: usize) -> Result<UploadId, StoreError> {
        (**self).start_upload(key, part_size).await
    }

    async fn put_part(
        &self,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<PartTag, StoreError> {
        (**self).put_part(upload, number, body).await
    }

    async fn complete_upload(
        &self,
        upload: &UploadId,
        parts: Vec<PartTag>,
    ) -> Result<(), StoreError> {
        (**self).complete_upload(upload, parts).await
    }

    async fn abort_upload(&self, upload: &UploadId) -> Result<(), StoreError> {
        (**self).abort_upload(upload).await
    }

    async fn download(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        (**self).download(key, dest).await
    }
}

/// The bookkeeping of multipart uploads for the adapters that keep parts
/// themselves (memory, filesystem, scratch): which uploads are open and the
/// size of each part put, checked against the contract.
#[derive(Debug, Default)]
pub struct OpenUploads(std::sync::Mutex<std::collections::HashMap<String, BTreeMap<u32, usize>>>);

impl OpenUploads {
    pub fn open(&self, upload: &UploadId) {
        self.0
            .lock()
            .unwrap()
            .insert(upload.id.clone(), BTreeMap::new());
    }

    /// Checks a part before it is stored: the upload is open, the number
    /// and size are allowed.
    pub fn check_part(&self, upload: &UploadId, number: u32, len: usize) -> Result<(), StoreError> {
        validate_part(upload, number, len)?;
        match self.0.lock().unwrap().contains_key(&upload.id) {
            true => Ok(()),
            false => Err(StoreError::invalid_upload(upload, "no such upload")),
        }
    }

    /// Records a part once stored; its tag is its number.
    pub fn record_part(
        &self,
        upload: &UploadId,
        number: u32,
        len: usize,
    ) -> Result<PartTag, StoreError> {
        match self.0.lock().unwrap().get_mut(&upload.id) {
            Some(parts) => parts.insert(number, len),
            None => return Err(StoreError::invalid_upload(upload, "no such upload")),
        };
        Ok(PartTag {
            number,
            tag: number.to_string(),
        })
    }

    /// Checks a completion and closes the upload; returns the object's size.
    pub fn complete(&self, upload: &UploadId, parts: &[PartTag]) -> Result<u64, StoreError> {
        let mut open = self.0.lock().unwrap();
        let sizes = open
            .get(&upload.id)
            .ok_or_else(|| StoreError::invalid_upload(upload, "no such upload"))?;
        validate_completion(upload, parts, |n| sizes.get(&n).copied())?;
        let len: usize = parts.iter().map(|p| sizes[&p.number]).sum();
        open.remove(&upload.id);
        Ok(len as u64)
    }

    pub fn close(&self, upload: &UploadId) {
        self.0.lock().unwrap().remove(&upload.id);
    }
}

/// Checks a part against the contract: its number, and its size for a
/// part that is not last (a part shorter than `part_size` must be the last,
/// which `complete_upload` checks).
pub fn validate_part(upload: &UploadId, number: u32, len: usize) -> Result<(), StoreError> {
    let bad = |reason| Err(StoreError::invalid_upload(upload, reason));
    if number == 0 || number > MAX_PARTS {
        return bad("part numbers run from 1 to 10000");
    }
    if len > upload.part_size {
        return bad("a part is larger than the upload's part size");
    }
    Ok(())
}

/// Checks a completion's part list: numbers 1..=n in order, and every part
/// but the last of the full part size (`sizes` gives each part's length).
pub fn validate_completion(
    upload: &UploadId,
    parts: &[PartTag],
    sizes: impl Fn(u32) -> Option<usize>,
) -> Result<(), StoreError> {
    let bad = |reason| Err(StoreError::invalid_upload(upload, reason));
    if parts.is_empty() {
        return bad("an upload needs at least one part");
    }
    for (i, part) in parts.iter().enumerate() {
        if part.number != i as u32 + 1 {
            return bad("parts must be numbered 1..=n, in order, each once");
        }
        match sizes(part.number) {
            None => return bad("a part of the completion was never put"),
            Some(len) if i + 1 < parts.len() && len != upload.part_size => {
                return bad("every part but the last must have the upload's part size");
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks a key against the contract's rules.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return bad("only printable ASCII without spaces is allowed");
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("empty, '.' or '..' path segment");
    }
    Ok(())
}

/// Checks metadata names against S3's rules for user metadata.
pub fn validate_metadata(key: &str, metadata: &Metadata) -> Result<(), StoreError> {
    for name in metadata.keys() {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(StoreError::InvalidKey {
                key: key.to_string(),
                reason: "metadata names must be [a-z0-9-]+",
            });
        }
    }
    Ok(())
}

/// Writes `value` as compact JSON at `key` (an overwrite): the job's
/// small records.
pub async fn put_json<T: serde::Serialize + ?Sized>(
    store: &dyn ObjectStore,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec(value).expect("records serialise");
    store
        .put(key, Bytes::from(body), Metadata::new(), PutMode::Overwrite)
        .await?;
    Ok(())
}

/// Reads a JSON record that only informs: a missing or unreadable one is
/// `None`.
/// The bytes of `body` in `range`, cut at its end: how the stores that
/// hold a body whole answer [`ObjectStore::get_range`].
pub fn slice_range(body: &Bytes, range: Range<u64>) -> Bytes {
    let len = body.len() as u64;
    let (start, end) = (range.start.min(len), range.end.min(len));
    body.slice(start as usize..end.max(start) as usize)
}
