# Two work queues, each with a dead-letter queue. A message that fails
# max_receive_count times (a poison message) moves to the DLQ, where the
# orchestrator finds it. Visibility timeouts are 6x the consuming function's
# timeout, as AWS recommends for SQS triggers, so a message is not handed to
# a second invocation while the first may still be working on it.

resource "aws_sqs_queue" "tiles_dlq" {
  name                      = "${var.name_prefix}-tiles-dlq"
  message_retention_seconds = 1209600 # 14 days, the maximum
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "tiles" {
  name                       = "${var.name_prefix}-tiles"
  visibility_timeout_seconds = 6 * var.worker_timeout_seconds
  message_retention_seconds  = 345600 # 4 days
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.tiles_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "tiles_dlq" {
  queue_url = aws_sqs_queue.tiles_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.tiles.arn]
  })
}

# The explorer's one-tile jobs (`mandel-explore --bucket`) have a queue
# of their own, consumed by the same worker function through a trigger of
# its own with its own concurrency: a batch job's backlog never delays an
# explorer's tile, and explorer tiles never take the batch trigger's
# invocations or queue ahead of a batch job's tiles.
resource "aws_sqs_queue" "explore_dlq" {
  name                      = "${var.name_prefix}-explore-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "explore" {
  name                       = "${var.name_prefix}-explore"
  visibility_timeout_seconds = 6 * var.worker_timeout_seconds
  # A tile nobody has looked at for an hour is not wanted any more.
  message_retention_seconds = 3600
  sqs_managed_sse_enabled   = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.explore_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "explore_dlq" {
  queue_url = aws_sqs_queue.explore_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.explore.arn]
  })
}

resource "aws_sqs_queue" "stitch_dlq" {
  name                      = "${var.name_prefix}-stitch-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "stitch" {
  name                       = "${var.name_prefix}-stitch"
  visibility_timeout_seconds = 6 * var.stitch_timeout_seconds
  message_retention_seconds  = 345600
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.stitch_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "stitch_dlq" {
  queue_url = aws_sqs_queue.stitch_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.stitch.arn]
  })
}
