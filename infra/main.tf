# mandel on AWS: a jobs bucket, a tiles queue feeding the worker function,
# a stitch queue feeding the stitch function, both queues with dead-letter
# queues, one least-privilege role per function, and the deployment record
# through which `mandel-orchestrate --bucket <bucket>` finds the queues.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  bucket   = coalesce(var.bucket_name, "${var.name_prefix}-${data.aws_caller_identity.current.account_id}-${var.region}")
  zip_dir  = coalesce(var.lambda_zip_dir, "${path.module}/../target/lambda")
  functions = {
    worker = {
      binary  = "mandel-worker"
      memory  = var.worker_memory_mb
      timeout = var.worker_timeout_seconds
    }
    stitch = {
      binary  = "mandel-stitch"
      memory  = var.stitch_memory_mb
      timeout = var.stitch_timeout_seconds
    }
  }
}
