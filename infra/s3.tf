resource "aws_s3_bucket" "jobs" {
  # checkov:skip=CKV_AWS_18: access logging would need a second bucket; jobs are transient render outputs keyed by content hash.
  # checkov:skip=CKV_AWS_144: cross-region replication of transient render outputs is not worth its cost; a lost job is re-rendered.
  # checkov:skip=CKV2_AWS_62: nothing consumes bucket event notifications; completion is signalled through the stitch queue.
  # checkov:skip=CKV_AWS_145: SSE-S3 (AES256) is enough for rendered images; SSE-KMS would add a KMS request to each of a job's hundreds of PUTs and GETs.
  # checkov:skip=CKV_AWS_21: versioning would only keep identical copies: every write is deterministic and keyed, and retries rewrite the same bytes.
  bucket = local.bucket
}

resource "aws_s3_bucket_ownership_controls" "jobs" {
  bucket = aws_s3_bucket.jobs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "jobs" {
  bucket                  = aws_s3_bucket.jobs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "jobs" {
  bucket = aws_s3_bucket.jobs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "jobs" {
  bucket = aws_s3_bucket.jobs.id

  rule {
    id     = "expire-jobs"
    status = "Enabled"
    filter {
      prefix = "jobs/"
    }
    expiration {
      days = var.job_retention_days
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "jobs_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.jobs.arn,
      "${aws_s3_bucket.jobs.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "jobs" {
  bucket = aws_s3_bucket.jobs.id
  policy = data.aws_iam_policy_document.jobs_bucket.json
  # The public access block must exist first, or S3 may refuse the policy.
  depends_on = [aws_s3_bucket_public_access_block.jobs]
}

# The deployment record (crates/pipeline/src/deployment.rs): how clients and
# workers find the queues from the bucket name alone.
resource "aws_s3_object" "deployment" {
  bucket       = aws_s3_bucket.jobs.id
  key          = ".mandel/deployment.json"
  content_type = "application/json"
  content = jsonencode({
    version          = 1
    bucket           = aws_s3_bucket.jobs.id
    region           = var.region
    tiles_queue_url  = aws_sqs_queue.tiles.url
    tiles_dlq_url    = aws_sqs_queue.tiles_dlq.url
    stitch_queue_url = aws_sqs_queue.stitch.url
    stitch_dlq_url   = aws_sqs_queue.stitch_dlq.url
    explore_queue_url = aws_sqs_queue.explore.url
    worker           = { timeout_secs = var.worker_timeout_seconds, memory_mb = var.worker_memory_mb }
    stitch           = { timeout_secs = var.stitch_timeout_seconds, memory_mb = var.stitch_memory_mb }
    fleet = {
      architecture           = var.architecture
      worker_max_concurrency = var.worker_max_concurrency
      worker_batch_size      = var.worker_batch_size
      job_retention_days     = var.job_retention_days
    }
  })
  depends_on = [aws_s3_bucket_server_side_encryption_configuration.jobs]
}
