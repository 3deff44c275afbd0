"""Creates mandel's bucket, queues (with dead-letter queues) and the
deployment record on LocalStack, as Terraform does on AWS. Idempotent."""
import json
import os

import boto3

endpoint = os.environ["AWS_ENDPOINT_URL"]
bucket = os.environ["MANDEL_BUCKET"]
prefix = os.environ.get("MANDEL_PREFIX", "mandel")
s3 = boto3.client("s3", endpoint_url=endpoint)
sqs = boto3.client("sqs", endpoint_url=endpoint)

existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
if bucket not in existing:
    s3.create_bucket(Bucket=bucket)


def queue(name, visibility, dlq_arn=None, max_receive=3):
    attrs = {"VisibilityTimeout": str(visibility)}
    if dlq_arn:
        attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)})
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attrs)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


tiles_dlq, tiles_dlq_arn = queue(f"{prefix}-tiles-dlq", 30)
stitch_dlq, stitch_dlq_arn = queue(f"{prefix}-stitch-dlq", 30)
tiles, _ = queue(f"{prefix}-tiles", 5, tiles_dlq_arn)
stitch, _ = queue(f"{prefix}-stitch", 10, stitch_dlq_arn)
explore_dlq, explore_dlq_arn = queue(f"{prefix}-explore-dlq", 30)
explore, _ = queue(f"{prefix}-explore", 5, explore_dlq_arn)

record = {
    "version": 1,
    "bucket": bucket,
    "region": os.environ.get("AWS_REGION", "us-east-1"),
    "tiles_queue_url": tiles,
    "tiles_dlq_url": tiles_dlq,
    "stitch_queue_url": stitch,
    "stitch_dlq_url": stitch_dlq,
    "explore_queue_url": explore,
    # Terraform's defaults (infra/variables.tf); the pollers enforce them.
    "worker": {"timeout_secs": 60, "memory_mb": 3538},
    "stitch": {"timeout_secs": 300, "memory_mb": 4096},
    "fleet": {"architecture": "x86_64", "worker_max_concurrency": 50, "worker_batch_size": 10,
              "job_retention_days": 7},
}
s3.put_object(Bucket=bucket, Key=".mandel/deployment.json", Body=json.dumps(record, indent=2).encode(),
              ContentType="application/json")
print(f"bootstrap: bucket {bucket}, queues {tiles}, {stitch}, {explore}")
