output "bucket" {
  description = "The jobs bucket."
  value       = aws_s3_bucket.jobs.id
}

output "tiles_queue_url" {
  value = aws_sqs_queue.tiles.url
}

output "tiles_dlq_url" {
  value = aws_sqs_queue.tiles_dlq.url
}

output "stitch_queue_url" {
  value = aws_sqs_queue.stitch.url
}

output "explore_queue_url" {
  value = aws_sqs_queue.explore.url
}

output "stitch_dlq_url" {
  value = aws_sqs_queue.stitch_dlq.url
}

output "functions" {
  description = "The function names."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "render_command" {
  description = "Renders the default image on this deployment."
  value       = "AWS_REGION=${var.region} mandel-orchestrate --bucket ${aws_s3_bucket.jobs.id}"
}

output "client_policy_arn" {
  description = "Attach to the IAM user or role that runs mandel-orchestrate --bucket."
  value       = aws_iam_policy.client.arn
}
