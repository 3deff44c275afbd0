"""Sets up an IAM-enforcing moto server for mandel's IAM tests.

Reads a JSON spec on stdin, creates (without authentication, as moto allows
before auth is switched on):
  - the bucket and any objects under it ("objects": {key: text}),
  - the queues, each optionally with a dead-letter queue and maxReceiveCount,
  - one IAM user per entry of "users", with the given policy document inline
    and an access key,
then switches authentication on (moto's /moto-api/reset-auth), so from here
every request must be signed by one of those users and is allowed only by
its policy. Prints {"users": {name: {"key": ..., "secret": ...}}} on stdout.

Spec: {"endpoint": "http://127.0.0.1:PORT", "region": "us-east-1",
       "bucket": "b", "objects": {...},
       "queues": [{"name": "q", "visibility": 3, "dlq": "q-dlq", "max_receive": 2}],
       "users": {"worker": {...policy document...}}}
"""

import json
import sys
import urllib.request

import boto3

spec = json.load(sys.stdin)
endpoint, region = spec["endpoint"], spec.get("region", "us-east-1")
# Before auth is on, any credentials do.
session = boto3.session.Session(
    aws_access_key_id="setup", aws_secret_access_key="setup", region_name=region
)
s3 = session.client("s3", endpoint_url=endpoint)
sqs = session.client("sqs", endpoint_url=endpoint)
iam = session.client("iam", endpoint_url=endpoint)

s3.create_bucket(Bucket=spec["bucket"])
for key, text in spec.get("objects", {}).items():
    s3.put_object(Bucket=spec["bucket"], Key=key, Body=text.encode())

for q in spec.get("queues", []):
    attrs = {"VisibilityTimeout": str(q.get("visibility", 30))}
    if q.get("dlq"):
        dlq = sqs.create_queue(QueueName=q["dlq"])["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        attrs["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                "maxReceiveCount": str(q["max_receive"]),
            }
        )
    sqs.create_queue(QueueName=q["name"], Attributes=attrs)

users = {}
for name, policy in spec.get("users", {}).items():
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    users[name] = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}

request = urllib.request.Request(
    f"{endpoint}/moto-api/reset-auth",
    data=b"0",
    headers={"Content-Type": "text/plain"},
    method="POST",
)
urllib.request.urlopen(request).read()
json.dump({"users": users}, sys.stdout)
