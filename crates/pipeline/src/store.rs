//! The object-store port.
//!
//! # Contract
//!
//! Every adapter ([`MemoryStore`](crate::MemoryStore),
//! [`FsStore`](crate::FsStore), S3) behaves the same, and the conformance
//! suite ([`conformance`](crate::conformance), run by each adapter's tests)
//! holds each of them to it:
//!
//! - Keys are `/`-separated segments of printable ASCII; empty, `.` and `..`
//!   segments, a leading `/` and control characters are refused with
//!   [`StoreError::InvalidKey`].
//! - [`put`](ObjectStore::put) with [`PutMode::Overwrite`] replaces the whole
//!   object atomically: a reader sees the old bytes or the new, never a mix.
//! - With [`PutMode::Create`] the write happens only if no object has the key;
//!   of several concurrent creators exactly one gets [`PutOutcome::Written`],
//!   the others [`PutOutcome::AlreadyExists`] (S3 `If-None-Match: *`).
//! - [`get`](ObjectStore::get) returns the body and the user metadata given at
//!   write; a missing key is [`StoreError::NotFound`].
//! - [`list`](ObjectStore::list) is strongly consistent (read-after-write, as
//!   S3 is) and returns every key under the prefix, sorted, with its size.
//! - [`delete`](ObjectStore::delete) removes the object; deleting a key
//!   that has no object is not an error (so a retried delete is harmless).
//! - Errors that a retry may cure are marked [`StoreError::is_transient`];
//!   a refusal by the backend's access policy is [`StoreError::Denied`],
//!   naming the action that was refused.

use std::collections::BTreeMap;
use std::fmt::Debug;

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

    pub fn backend(key: &str, source: impl Into<BoxError>, transient: bool) -> Self {
        StoreError::Backend {
            key: key.to_string(),
            source: source.into(),
            transient,
        }
    }
}

/// A key-value object store (S3 and its stand-ins). See the module docs for
/// the contract.
#[async_trait]
pub trait ObjectStore: Debug + Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Object, StoreError>;

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

    /// Removes the object, if there is one.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// A shared store is a store (so wrappers can hold an `Arc<dyn ObjectStore>`).
#[async_trait]
impl<T: ObjectStore + ?Sized> ObjectStore for std::sync::Arc<T> {
    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        (**self).get(key).await
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

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
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
