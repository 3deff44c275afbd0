//! One reading of SDK errors for S3 and SQS alike: which are worth a retry,
//! and which are a refusal by an access policy.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// The HTTP status of the answer, if one came.
pub(crate) fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Worth a retry: a timeout, a failed connection or unreadable answer,
/// throttling, any 5xx, on every operation (a HEAD, whose answer has no
/// body and so no error code, included), and S3's 409 for a conditional
/// write that raced another on the same key (a retry settles it: written,
/// or 412 already there).
pub(crate) fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => {
            status(err).is_some_and(|s| s >= 500 || s == 429)
                || matches!(
                    err.code(),
                    Some(
                        "SlowDown"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestThrottled"
                            | "RequestTimeout"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "ConditionalRequestConflict"
                    )
                )
        }
    }
}

/// Whether an access policy refused the call (HTTP 403).
pub(crate) fn is_denied<E>(err: &SdkError<E, HttpResponse>) -> bool {
    status(err) == Some(403)
}

/// The short text of a refusal: its error code and message when the
/// service sent ones the SDK could read.
pub(crate) fn refusal<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("HTTP 403 {code}: {message}"),
        (Some(code), None) => format!("HTTP 403 {code}"),
        _ => "HTTP 403".to_string(),
    }
}
