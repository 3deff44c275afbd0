use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use mandel_pipeline::{Delivery, Queue, QueueError};
use tokio::task::JoinSet;

use crate::errors::{is_denied, is_transient, refusal};

/// SQS's limit on messages per batch call.
const BATCH: usize = 10;
/// Batch sends kept in flight at once.
const PARALLEL_SENDS: usize = 8;

/// A [`Queue`] on one SQS queue.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The queue's `maxReceiveCount` (from its redrive policy): the
    /// delivery after which a failing message moves to the dead-letter
    /// queue. `None` if the queue has no dead-letter queue.
    pub async fn max_receive_count(&self) -> Result<Option<u32>, QueueError> {
        let resp = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| self.sdk_error("sqs:GetQueueAttributes", e))?;
        let Some(policy) = resp
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        else {
            return Ok(None);
        };
        let policy: serde_json::Value = serde_json::from_str(policy)
            .map_err(|e| self.error(format!("unreadable RedrivePolicy: {e}"), false))?;
        // SQS writes the count as a string or a number, depending on who set it.
        Ok(match &policy["maxReceiveCount"] {
            serde_json::Value::Number(n) => n.as_u64().map(|n| n as u32),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        })
    }

    fn error(&self, source: impl std::fmt::Display, transient: bool) -> QueueError {
        QueueError {
            queue: self.url.clone(),
            source: source.to_string().into(),
            transient,
            denied: None,
        }
    }

    /// The error of an SQS call of IAM action `action`. SQS answers a call
    /// its policy refuses with HTTP 403 (code `AccessDenied` on AWS; some
    /// emulators send a body the SDK cannot parse), so the status decides.
    fn sdk_error<E>(&self, action: &'static str, err: SdkError<E, HttpResponse>) -> QueueError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        if is_denied(&err) {
            return QueueError {
                denied: Some(action),
                ..self.error(refusal(&err), false)
            };
        }
        self.error(DisplayErrorContext(&err), is_transient(&err))
    }

    async fn send_chunk(&self, bodies: Vec<String>) -> Result<(), QueueError> {
        let entries = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let mut pending = entries;
        for attempt in 0..5u32 {
            let resp = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| self.sdk_error("sqs:SendMessage", e))?;
            if resp.failed().is_empty() {
                return Ok(());
            }
            // Resend only the entries SQS refused, if the refusal was theirs
            // to retry (sender_fault == false).
            if resp.failed().iter().any(|f| f.sender_fault()) {
                let why: Vec<String> = resp
                    .failed()
                    .iter()
                    .map(|f| format!("{}: {:?}", f.code(), f.message()))
                    .collect();
                return Err(self.error(format!("batch entries refused: {}", why.join("; ")), false));
            }
            let failed: Vec<&str> = resp.failed().iter().map(|f| f.id()).collect();
            pending.retain(|e| failed.contains(&e.id()));
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        Err(self.error(
            format!(
                "{} batch entries still failing after retries",
                pending.len()
            ),
            true,
        ))
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        let mut chunks = bodies.chunks(BATCH).map(|c| c.to_vec());
        let mut in_flight = JoinSet::new();
        for chunk in chunks.by_ref().take(PARALLEL_SENDS) {
            let this = self.clone();
            in_flight.spawn(async move { this.send_chunk(chunk).await });
        }
        while let Some(done) = in_flight.join_next().await {
            done.expect("send task panicked")?;
            if let Some(chunk) = chunks.next() {
                let this = self.clone();
                in_flight.spawn(async move { this.send_chunk(chunk).await });
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        // SQS long-polls in whole seconds, 0 to 20.
        let wait_secs = wait.as_secs_f64().ceil().clamp(0.0, 20.0) as i32;
        let resp = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, BATCH) as i32)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.sdk_error("sqs:ReceiveMessage", e))?;
        Ok(resp
            .messages()
            .iter()
            .map(|m| Delivery {
                message_id: m.message_id().unwrap_or_default().to_string(),
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        for chunk in receipts.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .expect("id and receipt are set")
                })
                .collect();
            let resp = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.sdk_error("sqs:DeleteMessage", e))?;
            // A stale receipt (the message was redelivered or already
            // deleted) is not an error in the port's contract.
            let refused: Vec<String> = resp
                .failed()
                .iter()
                .filter(|f| f.code() != "ReceiptHandleIsInvalid")
                .map(|f| format!("{}: {:?}", f.code(), f.message()))
                .collect();
            if !refused.is_empty() {
                return Err(self.error(
                    format!("delete entries refused: {}", refused.join("; ")),
                    false,
                ));
            }
        }
        Ok(())
    }
}
