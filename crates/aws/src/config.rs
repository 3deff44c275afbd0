use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};

/// S3 and SQS clients built from the standard AWS environment (region,
/// credentials, `AWS_ENDPOINT_URL`).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The shared configuration, for other services' clients.
    pub config: SdkConfig,
}

impl AwsClients {
    pub async fn from_env() -> Self {
        // One retry layer: mandel_pipeline's `Retrying`, with its total
        // deadline and the classification in `errors.rs`, wraps every
        // store and queue of a `Cloud`. The SDK's own retries would repeat
        // each of its attempts up to three times more, past that deadline.
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        Self::from_config(&config)
    }

    pub fn from_config(config: &SdkConfig) -> Self {
        let mut s3 = aws_sdk_s3::config::Builder::from(config);
        if config.endpoint_url().is_some() {
            // S3 look-alikes (LocalStack) serve buckets by path, not by
            // virtual host, and do not all speak the newer checksum headers.
            s3 = s3
                .force_path_style(true)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        AwsClients {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            sqs: aws_sdk_sqs::Client::new(config),
            config: config.clone(),
        }
    }
}
