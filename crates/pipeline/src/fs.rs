//! A local-filesystem object store: one file per object under a root folder.
//!
//! Each file holds one line of JSON metadata, then the body. Writes go to a
//! temporary file in `<root>/.tmp` first; an overwrite then `rename`s it into
//! place (atomic on POSIX) and a create `hard_link`s it, which fails if the
//! key exists, so exactly one concurrent creator wins. A multipart upload
//! writes its parts in place into one temporary file (part `n` at offset
//! `(n - 1) × part_size` after an empty metadata line), renamed into place
//! when it completes.

use std::io::{self, BufRead, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::store::{
    Metadata, Object, ObjectMeta, ObjectStore, OpenUploads, PartTag, PutMode, PutOutcome,
    StoreError, UploadId, validate_key, validate_metadata,
};

const TMP_DIR: &str = ".tmp";

#[derive(Debug)]
pub struct FsStore {
    root: PathBuf,
    seq: AtomicU64,
    uploads: OpenUploads,
}

/// The metadata line of an object written by a multipart upload.
const NO_METADATA: &[u8] = b"{}\n";

impl FsStore {
    /// A store rooted at `root`, created if missing.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join(TMP_DIR))?;
        Ok(FsStore {
            root,
            seq: AtomicU64::new(0),
            uploads: OpenUploads::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        if key == TMP_DIR || key.starts_with(".tmp/") {
            return Err(StoreError::InvalidKey {
                key: key.to_string(),
                reason: "reserved by the filesystem store",
            });
        }
        Ok(self.root.join(key))
    }

    fn tmp_path(&self) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(TMP_DIR)
            .join(format!("{}-{n}", std::process::id()))
    }

    fn upload_path(&self, upload: &UploadId) -> PathBuf {
        self.root
            .join(TMP_DIR)
            .join(format!("upload-{}", upload.id))
    }
}

fn io_err(key: &str, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::NotFound {
            key: key.to_string(),
        }
    } else {
        // Interrupted and would-block are the only ones a retry may fix.
        let transient = matches!(
            e.kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
        );
        StoreError::backend(key, e, transient)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("filesystem task panicked")
}

fn read_object(key: &str, path: &Path) -> Result<Object, StoreError> {
    let file = std::fs::File::open(path).map_err(|e| io_err(key, e))?;
    let mut reader = io::BufReader::new(file);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| io_err(key, e))?;
    let metadata: Metadata = serde_json::from_str(line.trim_end())
        .map_err(|e| StoreError::backend(key, format!("corrupt metadata line: {e}"), false))?;
    let mut body = Vec::new();
    reader.read_to_end(&mut body).map_err(|e| io_err(key, e))?;
    Ok(Object {
        body: body.into(),
        metadata,
    })
}

/// The open file of an object, where its body starts, and its size.
fn open_body(key: &str, path: &Path) -> Result<(std::fs::File, u64, u64), StoreError> {
    let file = std::fs::File::open(path).map_err(|e| io_err(key, e))?;
    let total = file.metadata().map_err(|e| io_err(key, e))?.len();
    let mut line = Vec::new();
    io::BufReader::new(&file)
        .read_until(b'\n', &mut line)
        .map_err(|e| io_err(key, e))?;
    let start = line.len() as u64;
    Ok((file, start, total - start))
}

fn body_size(key: &str, path: &Path) -> Result<u64, StoreError> {
    Ok(open_body(key, path)?.2)
}

/// The body's bytes in `range`, cut at its end, read from the file alone.
fn read_range(key: &str, path: &Path, range: Range<u64>) -> Result<Bytes, StoreError> {
    let (file, body_start, size) = open_body(key, path)?;
    let start = range.start.min(size);
    let end = range.end.min(size).max(start);
    let mut buf = vec![0; (end - start) as usize];
    file.read_exact_at(&mut buf, body_start + start)
        .map_err(|e| io_err(key, e))?;
    Ok(buf.into())
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || read_object(&key, &path)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || read_range(&key, &path, range)).await
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        let path = self.path(key)?;
        validate_metadata(key, &metadata)?;
        let tmp = self.tmp_path();
        let key = key.to_string();
        blocking(move || {
            let header = serde_json::to_string(&metadata).expect("string map serialises");
            let write = || -> io::Result<()> {
                let mut f = io::BufWriter::new(std::fs::File::create(&tmp)?);
                f.write_all(header.as_bytes())?;
                f.write_all(b"\n")?;
                f.write_all(&body)?;
                f.into_inner().map_err(|e| e.into_error())?.sync_data()
            };
            write().map_err(|e| io_err(&key, e))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io_err(&key, e))?;
            }
            let placed = match mode {
                PutMode::Overwrite => std::fs::rename(&tmp, &path).map(|_| PutOutcome::Written),
                PutMode::Create => match std::fs::hard_link(&tmp, &path) {
                    Ok(()) => Ok(PutOutcome::Written),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        Ok(PutOutcome::AlreadyExists)
                    }
                    Err(e) => Err(e),
                },
            };
            let _ = std::fs::remove_file(&tmp);
            placed.map_err(|e| io_err(&key, e))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || match body_size(&key, &path) {
            Ok(size) => Ok(Some(ObjectMeta { key, size })),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            // Walk only the deepest folder the prefix names.
            let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
            let mut out = Vec::new();
            let mut stack = vec![(root.join(dir_part), dir_part.to_string())];
            while let Some((dir, key_dir)) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e)
                        if e.kind() == io::ErrorKind::NotFound
                            || e.kind() == io::ErrorKind::NotADirectory =>
                    {
                        continue;
                    }
                    Err(e) => return Err(io_err(&prefix, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_err(&prefix, e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if key_dir.is_empty() && name == TMP_DIR {
                        continue;
                    }
                    let key = if key_dir.is_empty() {
                        name
                    } else {
                        format!("{key_dir}/{name}")
                    };
                    let file_type = entry.file_type().map_err(|e| io_err(&key, e))?;
                    if file_type.is_dir() {
                        if key.starts_with(&prefix) || prefix.starts_with(&format!("{key}/")) {
                            stack.push((entry.path(), key));
                        }
                    } else if key.starts_with(&prefix) {
                        let size = body_size(&key, &entry.path())?;
                        out.push(ObjectMeta { key, size });
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&key, e)),
            _ => Ok(()),
        })
        .await
    }

    async fn start_upload(&self, key: &str, part_size: usize) -> Result<UploadId, StoreError> {
        self.path(key)?;
        let tmp = self.tmp_path();
        let id = tmp
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let upload = UploadId {
            key: key.to_string(),
            id,
            part_size,
        };
        let path = self.upload_path(&upload);
        let key = key.to_string();
        blocking(move || std::fs::write(&path, NO_METADATA).map_err(|e| io_err(&key, e))).await?;
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
        let path = self.upload_path(upload);
        let offset = (NO_METADATA.len() + (number as usize - 1) * upload.part_size) as u64;
        let len = body.len();
        let key = upload.key.clone();
        blocking(move || {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_err(&key, e))?;
            file.write_all_at(&body, offset)
                .map_err(|e| io_err(&key, e))
        })
        .await?;
        self.uploads.record_part(upload, number, len)
    }

    async fn complete_upload(
        &self,
        upload: &UploadId,
        parts: Vec<PartTag>,
    ) -> Result<(), StoreError> {
        let dest = self.path(&upload.key)?;
        let total = self.uploads.complete(upload, &parts)?;
        let path = self.upload_path(upload);
        let key = upload.key.clone();
        blocking(move || {
            let place = || -> io::Result<()> {
                let file = std::fs::OpenOptions::new().write(true).open(&path)?;
                // Parts beyond the last one listed were never asked for.
                file.set_len(NO_METADATA.len() as u64 + total)?;
                file.sync_data()?;
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::rename(&path, &dest)
            };
            place().map_err(|e| io_err(&key, e))
        })
        .await
    }

    async fn abort_upload(&self, upload: &UploadId) -> Result<(), StoreError> {
        self.uploads.close(upload);
        let path = self.upload_path(upload);
        let key = upload.key.clone();
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&key, e)),
            _ => Ok(()),
        })
        .await
    }
}
