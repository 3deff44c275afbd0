# One role per function, allowing only what its code does.

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name_prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

locals {
  bucket_arn = aws_s3_bucket.jobs.arn
  # Both functions read the deployment record when they start.
  deployment_record_arn = "${aws_s3_bucket.jobs.arn}/.mandel/deployment.json"
  consume_queue = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
  ]
}

# Worker: read params, the cancel marker and a deep job's reference orbit,
# write tiles, row markers, failure records and reference orbit segments,
# list its job's tiles and row markers, consume the tiles and explore
# queues, send to the stitch queue.
data "aws_iam_policy_document" "worker" {
  statement {
    sid     = "ReadParams"
    actions = ["s3:GetObject"]
    resources = [
      local.deployment_record_arn,
      "${local.bucket_arn}/jobs/*/params.json",
      "${local.bucket_arn}/jobs/*/cancelled",
      "${local.bucket_arn}/jobs/*/reference/*",
      "${local.bucket_arn}/jobs/*/reference.json",
    ]
  }
  statement {
    sid     = "WriteTiles"
    actions = ["s3:PutObject"]
    resources = [
      "${local.bucket_arn}/jobs/*/tiles/*",
      "${local.bucket_arn}/jobs/*/rows/*",
      "${local.bucket_arn}/jobs/*/failed/*",
      "${local.bucket_arn}/jobs/*/reference/*",
      "${local.bucket_arn}/jobs/*/reference.json",
    ]
  }
  statement {
    # Lists one row's tiles (jobs/<job>/tiles/<row>-), one tile's key and
    # the job's row markers (jobs/<job>/rows/). Not
    # narrowed by an s3:prefix condition: S3 answers a HEAD of a missing
    # object (the cancel marker) with 404 only to a caller that may list
    # the bucket, and a HEAD carries no prefix; without it, 403.
    sid       = "ListJobTiles"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
  statement {
    sid       = "ConsumeTiles"
    actions   = local.consume_queue
    resources = [aws_sqs_queue.tiles.arn, aws_sqs_queue.explore.arn]
  }
  statement {
    sid       = "SendStitch"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stitch.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["worker"].arn}:*"]
  }
}

# Stitch: read tiles, params, the cancel marker and a deep job's reference
# orbit (to render a damaged tile again), write the results (and
# a failure record, and tiles it rendered again), consume the stitch queue. ListBucket lets S3 answer 404 rather than 403 for a result that
# does not exist yet, which is how the stitch knows it has work to do.
data "aws_iam_policy_document" "stitch" {
  statement {
    sid     = "ReadJob"
    actions = ["s3:GetObject"]
    resources = [
      local.deployment_record_arn,
      "${local.bucket_arn}/jobs/*/params.json",
      "${local.bucket_arn}/jobs/*/tiles/*",
      "${local.bucket_arn}/jobs/*/result.json",
      "${local.bucket_arn}/jobs/*/cancelled",
      "${local.bucket_arn}/jobs/*/estimate.json",
      "${local.bucket_arn}/jobs/*/reference/*",
      "${local.bucket_arn}/jobs/*/reference.json",
    ]
  }
  # Tiles: a corrupt blob is rendered again and put back. The stats, the
  # report (with the client's estimate) and the Deep Zoom pyramid (one
  # pack) go beside the result.
  statement {
    sid     = "WriteResults"
    actions = ["s3:PutObject"]
    resources = [
      "${local.bucket_arn}/jobs/*/image.png",
      "${local.bucket_arn}/jobs/*/counts.npy",
      "${local.bucket_arn}/jobs/*/result.json",
      "${local.bucket_arn}/jobs/*/tiles/*",
      "${local.bucket_arn}/jobs/*/failed/stitch.json",
      "${local.bucket_arn}/jobs/*/stitching.json",
      "${local.bucket_arn}/jobs/*/stats.json",
      "${local.bucket_arn}/jobs/*/report.html",
      "${local.bucket_arn}/jobs/*/pyramid/image.pack",
    ]
  }
  # The outputs go up as multipart uploads (authorized as s3:PutObject),
  # and so does a large job's stats.json; a stitch that fails part way
  # discards its parts.
  statement {
    sid     = "AbortOutputUploads"
    actions = ["s3:AbortMultipartUpload"]
    resources = [
      "${local.bucket_arn}/jobs/*/image.png",
      "${local.bucket_arn}/jobs/*/counts.npy",
      "${local.bucket_arn}/jobs/*/pyramid/image.pack",
      "${local.bucket_arn}/jobs/*/stats.json",
    ]
  }
  statement {
    # As for the worker: 404, not 403, for the result and cancel marker
    # that do not exist yet (a HEAD carries no s3:prefix to condition on).
    sid       = "KnowMissingObjects"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
  statement {
    sid       = "ConsumeStitch"
    actions   = local.consume_queue
    resources = [aws_sqs_queue.stitch.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["stitch"].arn}:*"]
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${var.name_prefix}-${each.key}"
  role     = aws_iam_role.function[each.key].id
  policy = {
    worker = data.aws_iam_policy_document.worker.json
    stitch = data.aws_iam_policy_document.stitch.json
  }[each.key]
}

# The laptop user's policy: what `mandel-orchestrate --bucket` does to
# submit a job, wait for it, download it, cancel it and resume it, and
# what `mandel-explore --bucket` does to have the workers render tiles as
# one-tile jobs and read them (and the jobs' pyramids) back. Attach
# the managed policy (output `client_policy_arn`) to the IAM user or role
# you render with; nothing more is needed.
data "aws_iam_policy_document" "client" {
  statement {
    # The deployment record, params (to check a conflicting job id),
    # result, image, counts, failure records, the explorer's tiles and the
    # pyramids.
    sid     = "ReadJobs"
    actions = ["s3:GetObject"]
    resources = [
      local.deployment_record_arn,
      "${local.bucket_arn}/jobs/*",
    ]
  }
  statement {
    # The params, the estimate shown at submit (for the report), the
    # cancel marker.
    sid     = "SubmitAndCancel"
    actions = ["s3:PutObject"]
    resources = [
      "${local.bucket_arn}/jobs/*/params.json",
      "${local.bucket_arn}/jobs/*/estimate.json",
      "${local.bucket_arn}/jobs/*/cancelled",
    ]
  }
  statement {
    # A re-run clears the job's failure records and cancel marker; a new
    # stitch message clears the last stitch attempt's marker.
    sid     = "ClearFailures"
    actions = ["s3:DeleteObject"]
    resources = [
      "${local.bucket_arn}/jobs/*/failed/*",
      "${local.bucket_arn}/jobs/*/cancelled",
      "${local.bucket_arn}/jobs/*/stitching.json",
    ]
  }
  statement {
    # Progress, failures and what is already stored: listings of a job.
    sid       = "ListJobs"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
  statement {
    # Tile and reference-orbit messages; a stitch message when every tile
    # is already stored; the explorer's tile messages.
    sid       = "SendWork"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.tiles.arn, aws_sqs_queue.stitch.arn, aws_sqs_queue.explore.arn]
  }
}

resource "aws_iam_policy" "client" {
  name        = "${var.name_prefix}-client"
  description = "What mandel-orchestrate --bucket needs: submit, wait, download, cancel."
  policy      = data.aws_iam_policy_document.client.json
}
