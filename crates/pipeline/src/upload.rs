//! Writing an object as it is produced, part by part (a multipart upload),
//! so a gigapixel output never sits whole in memory: [`Appender`] writes
//! front to back (the PNG), [`Prepender`] back to front into an object of
//! known size (the `.npy`, whose rows the stitch produces top row first,
//! while the file starts with the bottom row). Memory: one part.

use bytes::Bytes;

use crate::store::{MIN_PART_SIZE, Metadata, ObjectStore, PartTag, PutMode, StoreError, UploadId};

/// The part size of the outputs' uploads: comfortably above S3's minimum,
/// and 10,000 parts (S3's maximum) hold 80 GiB, beyond the largest image.
pub const PART_SIZE: usize = 8 << 20;

const _: () = assert!(PART_SIZE >= MIN_PART_SIZE);

/// An object written in pieces without ever being held whole: one PUT if
/// it fits in a part (so a small object costs one request, as a PUT
/// does), else a multipart upload, part by part. Memory: one part.
pub struct Pieces<'a> {
    store: &'a dyn ObjectStore,
    key: String,
    first: Vec<u8>,
    parts: Option<Appender<'a>>,
}

impl<'a> Pieces<'a> {
    pub fn new(store: &'a dyn ObjectStore, key: &str) -> Self {
        Pieces {
            store,
            key: key.to_string(),
            first: Vec::new(),
            parts: None,
        }
    }

    /// Appends `bytes`; past a part, the upload starts.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if let Some(parts) = &mut self.parts {
            return parts.write(bytes).await;
        }
        self.first.extend_from_slice(bytes);
        if self.first.len() >= PART_SIZE {
            let first = std::mem::take(&mut self.first);
            let parts = Appender::start(self.store, &self.key).await?;
            self.parts.insert(parts).write(&first).await?;
        }
        Ok(())
    }

    /// Makes the object; returns its size.
    pub async fn finish(self) -> Result<u64, StoreError> {
        match self.parts {
            Some(parts) => parts.finish().await,
            None => {
                let len = self.first.len() as u64;
                self.store
                    .put(
                        &self.key,
                        Bytes::from(self.first),
                        Metadata::new(),
                        PutMode::Overwrite,
                    )
                    .await?;
                Ok(len)
            }
        }
    }

    /// Discards what was written (best effort).
    pub async fn abort(self) {
        if let Some(parts) = self.parts {
            parts.abort().await;
        }
    }
}

/// An object written front to back.
pub struct Appender<'a> {
    store: &'a dyn ObjectStore,
    upload: UploadId,
    buf: Vec<u8>,
    parts: Vec<PartTag>,
    written: u64,
}

impl<'a> Appender<'a> {
    pub async fn start(store: &'a dyn ObjectStore, key: &str) -> Result<Self, StoreError> {
        Ok(Appender {
            store,
            upload: store.start_upload(key, PART_SIZE).await?,
            buf: Vec::with_capacity(PART_SIZE),
            parts: Vec::new(),
            written: 0,
        })
    }

    /// Appends `bytes`, putting each part as it fills.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            let take = bytes.len().min(PART_SIZE - self.buf.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == PART_SIZE {
                self.put_buffered().await?;
            }
        }
        Ok(())
    }

    async fn put_buffered(&mut self) -> Result<(), StoreError> {
        let body = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(PART_SIZE),
        ));
        let number = self.parts.len() as u32 + 1;
        let tag = self.store.put_part(&self.upload, number, body).await?;
        self.parts.push(tag);
        Ok(())
    }

    /// Puts the last part and makes the object; returns its size.
    pub async fn finish(mut self) -> Result<u64, StoreError> {
        if !self.buf.is_empty() || self.parts.is_empty() {
            self.put_buffered().await?;
        }
        self.store.complete_upload(&self.upload, self.parts).await?;
        Ok(self.written)
    }

    /// Discards the upload (best effort: the bucket's lifecycle rule
    /// removes what an abort leaves).
    pub async fn abort(self) {
        let _ = self.store.abort_upload(&self.upload).await;
    }
}

/// An object of a known size written back to front: each write ends where
/// the previous one began.
pub struct Prepender<'a> {
    store: &'a dyn ObjectStore,
    upload: UploadId,
    size: u64,
    /// Everything from here to `size` has been written.
    written_from: u64,
    /// The part being filled: it ends where the parts already put begin.
    buf: Vec<u8>,
    parts: Vec<PartTag>,
}

impl<'a> Prepender<'a> {
    pub async fn start(
        store: &'a dyn ObjectStore,
        key: &str,
        size: u64,
    ) -> Result<Self, StoreError> {
        Ok(Prepender {
            store,
            upload: store.start_upload(key, PART_SIZE).await?,
            size,
            written_from: size,
            buf: Vec::new(),
            parts: Vec::new(),
        })
    }

    /// Writes `bytes` just before what was written so far, putting each
    /// part as it fills.
    ///
    /// # Panics
    /// If more than the object's size is written.
    pub async fn write_front(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        assert!(
            bytes.len() as u64 <= self.written_from,
            "more bytes than the object's size"
        );
        let part = PART_SIZE as u64;
        while !bytes.is_empty() {
            let end = self.written_from;
            let index = (end - 1) / part;
            let start = index * part;
            if self.buf.is_empty() {
                self.buf = vec![0; ((start + part).min(self.size) - start) as usize];
            }
            let take = bytes.len().min((end - start) as usize);
            let at = (end - start) as usize - take;
            self.buf[at..at + take].copy_from_slice(&bytes[bytes.len() - take..]);
            bytes = &bytes[..bytes.len() - take];
            self.written_from -= take as u64;
            if self.written_from == start {
                let body = Bytes::from(std::mem::take(&mut self.buf));
                let tag = self
                    .store
                    .put_part(&self.upload, index as u32 + 1, body)
                    .await?;
                self.parts.push(tag);
            }
        }
        Ok(())
    }

    /// Makes the object.
    ///
    /// # Panics
    /// If the object is not written whole.
    pub async fn finish(mut self) -> Result<(), StoreError> {
        assert_eq!(self.written_from, 0, "the object is not written whole");
        self.parts.sort_by_key(|p| p.number);
        self.store.complete_upload(&self.upload, self.parts).await
    }

    /// Discards the upload (best effort, as [`Appender::abort`]).
    pub async fn abort(self) {
        let _ = self.store.abort_upload(&self.upload).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn appended_and_prepended_objects_are_their_bytes() {
        let store = MemoryStore::new();
        let chunk = PART_SIZE / 3 + 17;
        for len in [
            1,
            PART_SIZE,
            PART_SIZE + 1,
            3 * PART_SIZE - 5,
            2 * PART_SIZE,
        ] {
            let want = data(len);
            let mut a = Appender::start(&store, "a").await.unwrap();
            for piece in want.chunks(chunk) {
                a.write(piece).await.unwrap();
            }
            a.finish().await.unwrap();
            assert_eq!(store.get("a").await.unwrap().body, want, "appended {len}");

            let mut p = Prepender::start(&store, "p", len as u64).await.unwrap();
            for piece in want.rchunks(chunk) {
                p.write_front(piece).await.unwrap();
            }
            p.finish().await.unwrap();
            assert_eq!(store.get("p").await.unwrap().body, want, "prepended {len}");

            let mut q = Pieces::new(&store, "q");
            for piece in want.chunks(chunk) {
                q.write(piece).await.unwrap();
            }
            assert_eq!(q.finish().await.unwrap(), len as u64);
            assert_eq!(store.get("q").await.unwrap().body, want, "in pieces {len}");
        }
        let n = Pieces::new(&store, "empty").finish().await.unwrap();
        assert_eq!(n, 0);
        assert!(store.get("empty").await.unwrap().body.is_empty());
    }
}
