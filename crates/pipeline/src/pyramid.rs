//! A cloud job's Deep Zoom pyramid, stored as one pack
//! ([`mandel_core::pyramid::pack`]) at [`JobId::pyramid_pack_key`]: the
//! stitch writes it as the picture streams ([`PackUpload`], one multipart
//! upload, so a job's pyramid costs a few requests, not a PUT per tile),
//! and viewers read it back a tile at a time by byte range
//! ([`StoredPyramid`]). The descriptor and the viewer page are not
//! stored: they follow from the picture's size, which the pack's footer
//! holds.

use std::sync::Arc;

use bytes::Bytes;
use mandel_core::pyramid::Tile;
use mandel_core::pyramid::pack::{Footer, PackWriter};
use tokio::sync::mpsc;

use crate::error::PipelineError;
use crate::job::JobId;
use crate::store::{ObjectStore, StoreError};
use crate::upload::Appender;

enum Batch {
    Tiles(Vec<Tile>),
    Finish,
}

/// A pack going up in the background while the stitch goes on with the
/// next band: tiles in the order the picture makes them (a deterministic
/// byte stream, so a stitch that dies and runs again writes the same
/// object), the index and footer last.
pub(crate) struct PackUpload {
    tiles: mpsc::Sender<Batch>,
    task: tokio::task::JoinHandle<Result<u64, PipelineError>>,
}

impl PackUpload {
    /// Starts the pack of `job`'s `width`×`height` picture.
    pub(crate) fn start(
        store: &Arc<dyn ObjectStore>,
        job: &JobId,
        width: usize,
        height: usize,
    ) -> Self {
        // One band's tiles waiting while the one before goes up, so the
        // pack never holds more than two bands' tiles.
        let (tiles, mut rx) = mpsc::channel::<Batch>(1);
        let (store, key) = (Arc::clone(store), job.pyramid_pack_key());
        let task = tokio::spawn(async move {
            let mut out = Appender::start(&*store, &key).await?;
            let mut pack = PackWriter::new(width, height);
            let written: Result<bool, StoreError> = async {
                while let Some(batch) = rx.recv().await {
                    match batch {
                        Batch::Tiles(tiles) => {
                            for t in tiles {
                                pack.place(&t);
                                out.write(&t.png).await?;
                            }
                        }
                        Batch::Finish => return Ok(true),
                    }
                }
                // The stitch gave up: no pack.
                Ok(false)
            }
            .await;
            match written {
                Ok(true) => {
                    out.write(&pack.finish()).await?;
                    Ok(out.finish().await?)
                }
                Ok(false) => {
                    out.abort().await;
                    Ok(0)
                }
                Err(e) => {
                    out.abort().await;
                    Err(e.into())
                }
            }
        });
        PackUpload { tiles, task }
    }

    /// Queues tiles; if the upload has failed, [`finish`](Self::finish)
    /// says why.
    pub(crate) async fn send(&self, tiles: Vec<Tile>) {
        if !tiles.is_empty() {
            let _ = self.tiles.send(Batch::Tiles(tiles)).await;
        }
    }

    /// Every tile sent: writes the index and makes the object; returns
    /// its size.
    pub(crate) async fn finish(self) -> Result<u64, PipelineError> {
        let _ = self.tiles.send(Batch::Finish).await;
        self.task.await.expect("the pyramid's upload panicked")
    }

    /// Discards the upload.
    pub(crate) async fn abort(self) {
        drop(self.tiles);
        let _ = self.task.await;
    }
}

/// A job's stored pyramid, opened: its footer read once, then each tile
/// in two ranged GETs (its index entry, its PNG).
#[derive(Clone, Debug)]
pub struct StoredPyramid {
    key: String,
    footer: Footer,
}

impl StoredPyramid {
    /// The pyramid of `job`, or `None` if it has none (not finished, or
    /// stitched without one).
    pub async fn open(store: &dyn ObjectStore, job: &JobId) -> Result<Option<Self>, PipelineError> {
        let key = job.pyramid_pack_key();
        let Some(meta) = store.head(&key).await? else {
            return Ok(None);
        };
        let size = meta.size;
        let tail = store
            .get_range(&key, size.saturating_sub(Footer::LEN)..size)
            .await?;
        let footer = Footer::parse(&tail, size).map_err(|e| unreadable(&key, e))?;
        Ok(Some(StoredPyramid { key, footer }))
    }

    /// The picture's width and height.
    pub fn size(&self) -> (usize, usize) {
        (self.footer.width as usize, self.footer.height as usize)
    }

    /// The PNG of tile `col`, `row` of `level`, or `None` if the pyramid
    /// has no such tile.
    pub async fn tile(
        &self,
        store: &dyn ObjectStore,
        level: u32,
        col: usize,
        row: usize,
    ) -> Result<Option<Bytes>, PipelineError> {
        let Some(entry) = self.footer.entry(level, col, row) else {
            return Ok(None);
        };
        let entry = store.get_range(&self.key, entry).await?;
        let png = self
            .footer
            .tile(&entry)
            .map_err(|e| unreadable(&self.key, e))?;
        let len = png.end - png.start;
        let bytes = store.get_range(&self.key, png).await?;
        if bytes.len() as u64 != len {
            return Err(unreadable(&self.key, "a tile is cut short"));
        }
        Ok(Some(bytes))
    }
}

fn unreadable(key: &str, reason: impl ToString) -> PipelineError {
    PipelineError::Unreadable {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}
