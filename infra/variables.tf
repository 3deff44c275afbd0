variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, queues, roles, bucket)."
  type        = string
  default     = "mandel"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name_prefix))
    error_message = "name_prefix must be 1 to 31 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "bucket_name" {
  description = "Name of the jobs bucket. Default: <name_prefix>-<account id>-<region>."
  type        = string
  default     = null
}

variable "architecture" {
  description = "Lambda architecture of both functions: x86_64 (AVX2/AVX-512 kernel, the measured default) or arm64 (NEON kernel, ~20% cheaper per GB-second). It must match the zips from infra/package.sh."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "lambda_zip_dir" {
  description = "Where cargo-lambda put the zips (<dir>/<binary>/bootstrap.zip)."
  type        = string
  default     = null
}

variable "worker_memory_mb" {
  description = "Memory of the tile worker. Lambda gives one vCPU per 1769 MB; the worker renders a batch's tiles on all of them."
  type        = number
  default     = 3538

  validation {
    condition     = var.worker_memory_mb >= 128 && var.worker_memory_mb <= 10240
    error_message = "worker_memory_mb must be between 128 and 10240."
  }
}

variable "worker_timeout_seconds" {
  description = "Timeout of one worker invocation (a batch of tiles)."
  type        = number
  default     = 60

  validation {
    condition     = var.worker_timeout_seconds >= 1 && var.worker_timeout_seconds <= 900
    error_message = "worker_timeout_seconds must be between 1 and 900."
  }
}

variable "stitch_memory_mb" {
  description = "Memory of the stitch function: it holds a row of tiles at a time (estimated at most about 1.5 GiB for the largest image)."
  type        = number
  default     = 4096

  validation {
    condition     = var.stitch_memory_mb >= 128 && var.stitch_memory_mb <= 10240
    error_message = "stitch_memory_mb must be between 128 and 10240."
  }
}

variable "stitch_timeout_seconds" {
  description = "Timeout of one stitch invocation."
  type        = number
  default     = 300

  validation {
    condition     = var.stitch_timeout_seconds >= 1 && var.stitch_timeout_seconds <= 900
    error_message = "stitch_timeout_seconds must be between 1 and 900."
  }
}

variable "worker_max_concurrency" {
  description = "Most worker invocations the tiles queue's trigger runs at once."
  type        = number
  default     = 50

  validation {
    condition     = var.worker_max_concurrency >= 2 && var.worker_max_concurrency <= 1000
    error_message = "worker_max_concurrency must be between 2 and 1000 (Lambda's limits for SQS triggers)."
  }
}

variable "explore_max_concurrency" {
  description = "Most worker invocations the explorer's queue's trigger runs at once, beside the tiles queue's."
  type        = number
  default     = 10

  validation {
    condition     = var.explore_max_concurrency >= 2 && var.explore_max_concurrency <= 1000
    error_message = "explore_max_concurrency must be between 2 and 1000 (Lambda's limits for SQS triggers)."
  }
}

variable "worker_batch_size" {
  description = "Tile messages per worker invocation."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_batch_size >= 1 && var.worker_batch_size <= 10
    error_message = "worker_batch_size must be between 1 and 10."
  }
}

variable "max_receive_count" {
  description = "Deliveries of a message before it moves to its dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 3
    error_message = "max_receive_count must be at least 3, so a transient failure is retried."
  }
}

variable "job_retention_days" {
  description = "Days after which a job's objects (jobs/ prefix) expire."
  type        = number
  default     = 7

  validation {
    condition     = var.job_retention_days >= 1
    error_message = "job_retention_days must be at least 1."
  }
}

variable "log_retention_days" {
  description = "Days the functions' CloudWatch logs are kept."
  type        = number
  default     = 14
}
