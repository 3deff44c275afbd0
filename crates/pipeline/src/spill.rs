//! A scratch store for the embedded mode: an index in memory, every body
//! on disk, so a render's memory does not grow with its tiles or outputs.
//!
//! Bodies (each after its metadata as one JSON line) are appended to one
//! log file and read back with positioned reads; an overwritten or deleted
//! object's bytes stay in the log until the store is dropped, which suits a
//! scratch store that lives for one render. A multipart upload writes its
//! parts in place into a file of its own, which stays the object's file
//! when the upload completes, so [`ObjectStore::download`] links it to its
//! destination instead of copying gigabytes. Everything lives in a folder
//! the store removes when dropped; put it on the output's filesystem (not a
//! RAM-backed `/tmp`) so the link is possible and the bytes really are on
//! disk.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::store::{
    Metadata, Object, ObjectMeta, ObjectStore, OpenUploads, PartTag, PutMode, PutOutcome,
    StoreError, UploadId, validate_key, validate_metadata,
};

/// Where an object's bytes are.
#[derive(Debug)]
enum Body {
    /// In the log: the metadata line, then the body.
    Log {
        offset: u64,
        meta_len: u32,
        len: u64,
    },
    /// A completed multipart upload's own file (no metadata).
    File { path: PathBuf, len: u64 },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Log { len, .. } | Body::File { len, .. } => *len,
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct SpillStore {
    dir: tempfile::TempDir,
    log: File,
    log_end: AtomicU64,
    index: Mutex<BTreeMap<String, Body>>,
    uploads: OpenUploads,
    next_upload: AtomicU64,
}

fn io_err(key: &str, e: io::Error) -> StoreError {
    StoreError::backend(key, e, false)
}

impl SpillStore {
    /// A store in a new folder under `parent`.
    pub fn new_in(parent: &Path) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(".mandel-scratch-")
            .tempdir_in(parent)?;
        let log = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("objects.log"))?;
        Ok(SpillStore {
            dir,
            log,
            log_end: AtomicU64::new(0),
            index: Mutex::default(),
            uploads: OpenUploads::default(),
            next_upload: AtomicU64::new(0),
        })
    }

    fn upload_path(&self, upload: &UploadId) -> PathBuf {
        self.dir.path().join(format!("upload-{}", upload.id))
    }

    /// Replaces the index entry of `key`, removing a replaced upload file.
    fn place(&self, key: &str, body: Body) {
        let old = self.index.lock().unwrap().insert(key.to_string(), body);
        if let Some(Body::File { path, .. }) = old {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Where an object's body is: a record in the log, or a file of its own
/// (opened, so a replacement cannot remove it under the reader).
enum Located {
    Log {
        offset: u64,
        meta_len: u32,
        len: u64,
    },
    File(File),
}

impl SpillStore {
    fn locate(&self, key: &str) -> Result<Located, StoreError> {
        validate_key(key)?;
        let index = self.index.lock().unwrap();
        match index.get(key) {
            None => Err(StoreError::NotFound {
                key: key.to_string(),
            }),
            Some(&Body::Log {
                offset,
                meta_len,
                len,
            }) => Ok(Located::Log {
                offset,
                meta_len,
                len,
            }),
            // Opened under the lock: a replaced File body's file is removed.
            Some(Body::File { path, .. }) => File::open(path)
                .map(Located::File)
                .map_err(|e| io_err(key, e)),
        }
    }
}

#[async_trait]
impl ObjectStore for SpillStore {
    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        let (offset, meta_len, len) = match self.locate(key)? {
            Located::Log {
                offset,
                meta_len,
                len,
            } => (offset, meta_len, len),
            Located::File(mut file) => {
                let mut body = Vec::new();
                file.read_to_end(&mut body).map_err(|e| io_err(key, e))?;
                return Ok(Object {
                    body: body.into(),
                    metadata: Metadata::new(),
                });
            }
        };
        // The log only grows, so a located record is read without the
        // lock: the stitch's tile reads do not queue behind each other.
        let mut meta = vec![0; meta_len as usize];
        let mut body = vec![0; len as usize];
        self.log
            .read_exact_at(&mut meta, offset)
            .and_then(|()| {
                self.log
                    .read_exact_at(&mut body, offset + u64::from(meta_len))
            })
            .map_err(|e| io_err(key, e))?;
        let metadata = serde_json::from_slice(&meta)
            .map_err(|e| StoreError::backend(key, format!("corrupt metadata: {e}"), false))?;
        Ok(Object {
            body: body.into(),
            metadata,
        })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let located = self.locate(key)?;
        let (file, at, size) = match &located {
            Located::Log {
                offset,
                meta_len,
                len,
            } => (&self.log, offset + u64::from(*meta_len), *len),
            Located::File(file) => {
                let size = file.metadata().map_err(|e| io_err(key, e))?.len();
                (file, 0, size)
            }
        };
        let start = range.start.min(size);
        let end = range.end.min(size).max(start);
        let mut buf = vec![0; (end - start) as usize];
        file.read_exact_at(&mut buf, at + start)
            .map_err(|e| io_err(key, e))?;
        Ok(buf.into())
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
        if mode == PutMode::Create && self.index.lock().unwrap().contains_key(key) {
            return Ok(PutOutcome::AlreadyExists);
        }
        let mut meta = serde_json::to_vec(&metadata).expect("string map serialises");
        meta.push(b'\n');
        let meta_len = meta.len() as u32;
        let offset = self
            .log_end
            .fetch_add((meta.len() + body.len()) as u64, Ordering::Relaxed);
        self.log
            .write_all_at(&meta, offset)
            .and_then(|()| self.log.write_all_at(&body, offset + u64::from(meta_len)))
            .map_err(|e| io_err(key, e))?;
        let entry = Body::Log {
            offset,
            meta_len,
            len: body.len() as u64,
        };
        let mut index = self.index.lock().unwrap();
        if mode == PutMode::Create && index.contains_key(key) {
            return Ok(PutOutcome::AlreadyExists);
        }
        if let Some(Body::File { path, .. }) = index.insert(key.to_string(), entry) {
            let _ = std::fs::remove_file(path);
        }
        Ok(PutOutcome::Written)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        validate_key(key)?;
        Ok(self.index.lock().unwrap().get(key).map(|b| ObjectMeta {
            key: key.to_string(),
            size: b.len(),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let index = self.index.lock().unwrap();
        Ok(index
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, b)| ObjectMeta {
                key: k.clone(),
                size: b.len(),
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        if let Some(Body::File { path, .. }) = self.index.lock().unwrap().remove(key) {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    async fn start_upload(&self, key: &str, part_size: usize) -> Result<UploadId, StoreError> {
        validate_key(key)?;
        let upload = UploadId {
            key: key.to_string(),
            id: self.next_upload.fetch_add(1, Ordering::Relaxed).to_string(),
            part_size,
        };
        File::create_new(self.upload_path(&upload)).map_err(|e| io_err(key, e))?;
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
        let file = File::options()
            .write(true)
            .open(self.upload_path(upload))
            .map_err(|e| io_err(&upload.key, e))?;
        let offset = (number as u64 - 1) * upload.part_size as u64;
        file.write_all_at(&body, offset)
            .map_err(|e| io_err(&upload.key, e))?;
        self.uploads.record_part(upload, number, body.len())
    }

    async fn complete_upload(
        &self,
        upload: &UploadId,
        parts: Vec<PartTag>,
    ) -> Result<(), StoreError> {
        let len = self.uploads.complete(upload, &parts)?;
        let path = self.upload_path(upload);
        let file = File::options()
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&upload.key, e))?;
        // Parts beyond the last one listed were never asked for.
        file.set_len(len).map_err(|e| io_err(&upload.key, e))?;
        self.place(&upload.key, Body::File { path, len });
        Ok(())
    }

    async fn abort_upload(&self, upload: &UploadId) -> Result<(), StoreError> {
        self.uploads.close(upload);
        let _ = std::fs::remove_file(self.upload_path(upload));
        Ok(())
    }

    async fn download(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        validate_key(key)?;
        let dest_err = |e: io::Error| {
            StoreError::backend(key, format!("writing {}: {e}", dest.display()), false)
        };
        let index = self.index.lock().unwrap();
        let body = index.get(key).ok_or_else(|| StoreError::NotFound {
            key: key.to_string(),
        })?;
        match body {
            Body::File { path, len } => {
                // The upload's file becomes the destination: no copy when
                // they share a filesystem.
                match std::fs::remove_file(dest) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(dest_err(e)),
                    _ => {}
                }
                if std::fs::hard_link(path, dest).is_err() {
                    std::fs::copy(path, dest).map_err(dest_err)?;
                }
                Ok(*len)
            }
            Body::Log {
                offset,
                meta_len,
                len,
            } => {
                let mut buf = vec![0; *len as usize];
                self.log
                    .read_exact_at(&mut buf, offset + u64::from(*meta_len))
                    .map_err(|e| io_err(key, e))?;
                std::fs::write(dest, &buf).map_err(dest_err)?;
                Ok(*len)
            }
        }
    }
}
