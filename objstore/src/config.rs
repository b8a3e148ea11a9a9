//! Where the bucket is and how to reach it: `s3://BUCKET/PREFIX` plus the endpoint, region and
//! credentials from the usual AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`) or an
//! AWS shared-credentials file. Nothing here is ever written to the image.
//!
//! Timeouts and retries: each HTTP request gives up after [`Config::request_timeout`];
//! `object_store` retries 5xx, throttling and connection errors with exponential backoff
//! (0.1 s doubling up to 15 s, at most [`Config::max_retries`] times); the whole operation,
//! retries included, gives up after [`Config::op_timeout`] with [`Error::Timeout`](crate::Error::Timeout).

use crate::credentials;
use crate::error::Result;
use crate::target::Target;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Default [`Config::op_timeout`]: 30 s.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Config::request_timeout`]: 10 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Config::max_retries`].
pub const MAX_RETRIES: usize = 5;

/// How to reach one bucket.
#[derive(Clone, Debug)]
pub struct Config {
    pub target: Target,
    /// `AWS_ENDPOINT_URL` (e.g. `http://127.0.0.1:8333`); `None` means AWS itself. A plain
    /// `http://` endpoint is allowed because the user named it.
    pub endpoint: Option<String>,
    /// `AWS_REGION` (else `AWS_DEFAULT_REGION`, else `us-east-1`).
    pub region: String,
    /// An AWS shared-credentials file (`[profile]` with `aws_access_key_id`,
    /// `aws_secret_access_key`, optionally `aws_session_token`) whose keys replace those of
    /// the environment.
    pub credentials_file: Option<PathBuf>,
    /// The profile to read in `credentials_file`: `AWS_PROFILE`, else `default`.
    pub profile: String,
    /// One whole operation, retries included.
    pub op_timeout: Duration,
    /// One HTTP request.
    pub request_timeout: Duration,
    /// Retries of a failed request (5xx, throttling, connection errors).
    pub max_retries: usize,
}

impl Config {
    /// The configuration for `url` (`s3://BUCKET/PREFIX`) from the environment.
    /// Errors: [`Error::BadUrl`](crate::Error::BadUrl).
    pub fn from_env(url: &str) -> Result<Config> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(Config {
            target: Target::parse(url)?,
            endpoint: var("AWS_ENDPOINT_URL").or_else(|| var("AWS_ENDPOINT")),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_string()),
            credentials_file: None,
            profile: var("AWS_PROFILE").unwrap_or_else(|| "default".to_string()),
            op_timeout: OP_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_retries: MAX_RETRIES,
        })
    }

    /// The endpoint as messages name it.
    pub fn endpoint_name(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS S3 ({})", self.region))
    }

    /// The `object_store` builder for this configuration, with conditional puts mapped onto
    /// `If-None-Match: *` / `If-Match` (`S3ConditionalPut::ETagMatch`).
    /// Errors: [`Error::Config`](crate::Error::Config) when the credentials file is unreadable or lacks the profile.
    pub(crate) fn builder(&self) -> Result<AmazonS3Builder> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.op_timeout,
        };
        let client = ClientOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.request_timeout.min(Duration::from_secs(5)));
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.target.bucket)
            .with_region(&self.region)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(retry)
            .with_client_options(client);
        if let Some(ep) = &self.endpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"));
        }
        if let Some(path) = &self.credentials_file {
            let keys = credentials::read(path, &self.profile)?;
            b = b
                .with_access_key_id(keys.access_key_id)
                .with_secret_access_key(keys.secret_access_key);
            if let Some(t) = keys.session_token {
                b = b.with_token(t);
            }
        }
        Ok(b)
    }
}
