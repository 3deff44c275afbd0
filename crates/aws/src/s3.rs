use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use mandel_pipeline::{
    Metadata, Object, ObjectMeta, ObjectStore, PartTag, PutMode, PutOutcome, StoreError, UploadId,
    validate_completion, validate_key, validate_metadata, validate_part,
};

use crate::errors::{is_denied, is_transient, refusal, status};

/// An [`ObjectStore`] on one S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    /// A ListObjectsV2 request for the keys under `prefix`.
    fn listing(
        &self,
        prefix: &str,
    ) -> aws_sdk_s3::operation::list_objects_v2::builders::ListObjectsV2FluentBuilder {
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
    }

    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// One GET of `key`, of `range` if given; `None` if S3 found the
    /// range unsatisfiable (416: it starts at or past the end of a
    /// non-empty body, or the body is empty).
    async fn get_object(
        &self,
        key: &str,
        range: Option<&Range<u64>>,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, StoreError> {
        validate_key(key)?;
        let request = self.client.get_object().bucket(&self.bucket).key(key);
        let request = match range {
            Some(r) => request.range(format!("bytes={}-{}", r.start, r.end - 1)),
            None => request,
        };
        match request.send().await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(StoreError::NotFound {
                    key: key.to_string(),
                })
            }
            Err(e)
                if range.is_some()
                    && e.raw_response().is_some_and(|r| r.status().as_u16() == 416) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend("s3:GetObject", key, e)),
        }
    }

    /// One GET of the whole of `key`.
    async fn get_whole(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        Ok(self
            .get_object(key, None)
            .await?
            .expect("a whole GET has no range"))
    }
}

/// A GET's body, read whole.
async fn collect(key: &str, body: ByteStream) -> Result<Bytes, StoreError> {
    Ok(body
        .collect()
        .await
        .map_err(|e| StoreError::backend(key, format!("reading the body: {e}"), true))?
        .into_bytes())
}

/// The error of an S3 call of IAM action `action` on `key`. A 403 is a
/// refusal by the caller's policy (or the bucket's), named by its action.
fn backend<E>(
    action: &'static str,
    key: &str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = is_transient(&err);
    if is_denied(&err) {
        return StoreError::Denied {
            key: key.to_string(),
            action,
            source: refusal(&err).into(),
        };
    }
    StoreError::backend(
        key,
        aws_sdk_s3::error::DisplayErrorContext(err).to_string(),
        transient,
    )
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        let resp = self.get_whole(key).await?;
        let metadata: Metadata = resp
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let body = collect(key, resp.body).await?;
        Ok(Object { body, metadata })
    }

    /// One ranged GET; a range S3 finds unsatisfiable is no bytes.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        validate_key(key)?;
        if range.start >= range.end {
            // No bytes asked for; the key must still exist.
            return match self.head(key).await? {
                Some(_) => Ok(Bytes::new()),
                None => Err(StoreError::NotFound {
                    key: key.to_string(),
                }),
            };
        }
        let Some(resp) = self.get_object(key, Some(&range)).await? else {
            return Ok(Bytes::new());
        };
        let partial = resp.content_range().is_some();
        let body = collect(key, resp.body).await?;
        // A server that ignores Range sends the whole body (200, no
        // Content-Range): cut the range from it.
        Ok(if partial {
            body
        } else {
            mandel_pipeline::slice_range(&body, range)
        })
    }

    /// Streams the body into the file: a gigapixel `.npy` never sits whole
    /// in memory.
    async fn download(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        use tokio::io::AsyncWriteExt;
        let mut body = self.get_whole(key).await?.body;
        let dest_err = |e: std::io::Error| {
            StoreError::backend(key, format!("writing {}: {e}", dest.display()), false)
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(dest_err)?;
        let mut written = 0;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| StoreError::backend(key, format!("reading the body: {e}"), true))?
        {
            file.write_all(&chunk).await.map_err(dest_err)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(dest_err)?;
        Ok(written)
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
        let metadata: HashMap<String, String> = metadata.into_iter().collect();
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_metadata(Some(metadata));
        if mode == PutMode::Create {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e) if mode == PutMode::Create && status(&e) == Some(412) => {
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(backend("s3:PutObject", key, e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        validate_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(r) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: r.content_length().unwrap_or(0).max(0) as u64,
            })),
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_not_found())
                    || status(&e) == Some(404) =>
            {
                Ok(None)
            }
            // S3 answers a HEAD of a missing key with 403, not 404, to a
            // caller that may not list the bucket.
            Err(e) => Err(backend(
                "s3:GetObject (or s3:ListBucket, for a missing key)",
                key,
                e,
            )),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self.listing(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| backend("s3:ListBucket", prefix, e))?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    out.push(ObjectMeta {
                        key: key.to_string(),
                        size: obj.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        // S3 lists in UTF-8 binary order, which for ASCII keys is sorted;
        // sort anyway so the contract does not rest on that.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn list_children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self.listing(prefix).delimiter("/").into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| backend("s3:ListBucket", prefix, e))?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix()?.strip_prefix(prefix)?.strip_suffix('/'))
                    .map(str::to_string),
            );
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        // S3 answers 204 whether or not the key existed.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| backend("s3:DeleteObject", key, e))?;
        Ok(())
    }

    async fn start_upload(&self, key: &str, part_size: usize) -> Result<UploadId, StoreError> {
        validate_key(key)?;
        let resp = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| backend("s3:PutObject", key, e))?;
        let id = resp
            .upload_id()
            .ok_or_else(|| StoreError::backend(key, "S3 returned no upload id", false))?;
        Ok(UploadId {
            key: key.to_string(),
            id: id.to_string(),
            part_size,
        })
    }

    async fn put_part(
        &self,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<PartTag, StoreError> {
        validate_part(upload, number, body.len())?;
        let resp = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .part_number(number as i32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| backend("s3:PutObject", &upload.key, e))?;
        let tag = resp
            .e_tag()
            .ok_or_else(|| StoreError::backend(&upload.key, "S3 returned no part ETag", false))?;
        Ok(PartTag {
            number,
            tag: tag.to_string(),
        })
    }

    async fn complete_upload(
        &self,
        upload: &UploadId,
        parts: Vec<PartTag>,
    ) -> Result<(), StoreError> {
        // S3 checks the sizes itself (EntityTooSmall); the numbering is
        // checked here so every store refuses the same completions.
        validate_completion(upload, &parts, |_| Some(upload.part_size))?;
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .into_iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number as i32)
                            .e_tag(p.tag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| backend("s3:PutObject", &upload.key, e))?;
        Ok(())
    }

    async fn abort_upload(&self, upload: &UploadId) -> Result<(), StoreError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already completed or aborted: nothing left to discard.
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(backend("s3:AbortMultipartUpload", &upload.key, e)),
        }
    }
}
