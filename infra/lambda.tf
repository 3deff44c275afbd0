# The two functions, built by infra/package.sh (cargo lambda build --release
# --output-format zip) into target/lambda/<binary>/bootstrap.zip, and their
# SQS triggers.

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions
  # checkov:skip=CKV_AWS_158: the logs hold job ids and timings, nothing secret; the service key is enough.
  # checkov:skip=CKV_AWS_338: a year of render logs has no use; retention is a variable.
  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "function" {
  for_each = local.functions
  # checkov:skip=CKV_AWS_116: invoked synchronously by its SQS trigger; failed messages go to the queue's own DLQ (redrive policy), not a function DLQ.
  # checkov:skip=CKV_AWS_117: the functions reach only S3 and SQS; a VPC would add NAT or endpoints and cold-start cost for no isolation gained.
  # checkov:skip=CKV_AWS_115: concurrency is bounded by the trigger's maximum_concurrency; a reservation fails on accounts with a small concurrency quota.
  # checkov:skip=CKV_AWS_173: the only variable is the bucket name, which is not secret.
  # checkov:skip=CKV_AWS_50: X-Ray tracing is optional; JSON logs carry per-batch timings.
  # checkov:skip=CKV_AWS_272: code signing needs a signing profile the user may not have; the zips are built locally from source.
  function_name    = "${var.name_prefix}-${each.key}"
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${local.zip_dir}/${each.value.binary}/bootstrap.zip"
  source_code_hash = filebase64sha256("${local.zip_dir}/${each.value.binary}/bootstrap.zip")
  memory_size      = each.value.memory
  timeout          = each.value.timeout

  environment {
    variables = {
      MANDEL_BUCKET = aws_s3_bucket.jobs.id
    }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
    application_log_level = "INFO"
    system_log_level      = "WARN"
  }

  # The deployment record is read at start; it must exist before the first
  # invocation.
  depends_on = [aws_s3_object.deployment]
}

resource "aws_lambda_event_source_mapping" "tiles" {
  event_source_arn                   = aws_sqs_queue.tiles.arn
  function_name                      = aws_lambda_function.function["worker"].arn
  batch_size                         = var.worker_batch_size
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.worker_max_concurrency
  }
}

# The explorer's tiles: the same worker, its own trigger and concurrency
# (infra/sqs.tf says why).
resource "aws_lambda_event_source_mapping" "explore" {
  event_source_arn                   = aws_sqs_queue.explore.arn
  function_name                      = aws_lambda_function.function["worker"].arn
  batch_size                         = var.worker_batch_size
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.explore_max_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "stitch" {
  event_source_arn                   = aws_sqs_queue.stitch.arn
  function_name                      = aws_lambda_function.function["stitch"].arn
  batch_size                         = 1
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    # Stitches are rare and idempotent; 2 is the smallest allowed.
    maximum_concurrency = 2
  }
}
