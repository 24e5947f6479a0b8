//! S3 and S3-compatible lakes on `object_store`'s `AmazonS3`, with the
//! credential chain every AWS tool has.
//!
//! Owns: the order in which credentials and the region are found, and the
//! addressing style. The chain, as the AWS SDKs and CLI run it:
//!
//! 1. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`);
//! 2. the shared config and credentials files' profile (`AWS_PROFILE`, else
//!    `default`): static keys, `credential_process`, `web_identity_token_file`
//!    ([`super::aws_profile`]);
//! 3. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (EKS IRSA),
//!    through STS `AssumeRoleWithWebIdentity`;
//! 4. container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (ECS) or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`
//!    (EKS Pod Identity);
//! 5. the EC2 instance metadata service, IMDSv2 (`AWS_METADATA_ENDPOINT`
//!    moves it, as tests do).
//!
//! Steps 3–5 are `object_store`'s own providers; temporary credentials are
//! cached and fetched again five minutes before they expire.

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::ClientConfigKey;

use super::StorageError;
use super::aws_profile::{Profile, ProfileCredentials};
use crate::config::ObjectLake;

/// Where requests for the bucket go, besides the store itself.
pub struct BuiltS3 {
    /// The store.
    pub store: AmazonS3,
    /// The bucket's base URL: `https://bucket.s3.region.amazonaws.com` or
    /// `endpoint/bucket` (path-style), without a trailing `/`.
    pub bucket_url: url::Url,
    /// Region used in signatures.
    pub region: String,
    /// Where the credentials come from, for messages (never the secrets).
    pub credential_source: String,
}

/// Builds the store for an `s3://` lake.
pub fn build(lake: &ObjectLake, http: &reqwest::Client) -> Result<BuiltS3, StorageError> {
    let settings = |message: String| StorageError::Settings {
        url: lake.url(),
        message,
    };
    let profile = Profile::from_env()?;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&lake.bucket)
        .with_http_connector(super::http::AgentConnector::new(http.clone()));
    let region = lake
        .region
        .clone()
        .or_else(|| env_nonempty("AWS_REGION"))
        .or_else(|| env_nonempty("AWS_DEFAULT_REGION"))
        .or_else(|| profile.as_ref().and_then(|p| p.region.clone()))
        .unwrap_or_else(|| "us-east-1".to_owned());
    builder = builder.with_region(&region);

    let endpoint = lake
        .endpoint
        .clone()
        .or_else(|| env_nonempty("AWS_ENDPOINT_URL").and_then(|e| url::Url::parse(&e).ok()));
    let path_style = lake.path_style.unwrap_or(endpoint.is_some());
    let bucket_url = match (&endpoint, path_style) {
        (Some(endpoint), true) => join(endpoint, &lake.bucket),
        (Some(endpoint), false) => {
            let mut url = endpoint.clone();
            let host = format!(
                "{}.{}",
                lake.bucket,
                endpoint.host_str().unwrap_or_default()
            );
            url.set_host(Some(&host))
                .map_err(|e| settings(format!("endpoint `{endpoint}` with the bucket: {e}")))?;
            Ok(url)
        }
        (None, true) => url::Url::parse(&format!("https://s3.{region}.amazonaws.com"))
            .map_err(|e| e.to_string())
            .and_then(|u| join(&u, &lake.bucket)),
        (None, false) => url::Url::parse(&format!(
            "https://{}.s3.{region}.amazonaws.com",
            lake.bucket
        ))
        .map_err(|e| e.to_string()),
    }
    .map_err(settings)?;
    if let Some(endpoint) = &endpoint {
        // object_store takes the bucket's URL when virtual-hosted, the
        // service's when path-style.
        let text = if path_style {
            endpoint.as_str().trim_end_matches('/').to_owned()
        } else {
            bucket_url.as_str().trim_end_matches('/').to_owned()
        };
        builder = builder.with_endpoint(text);
        if endpoint.scheme() == "http" {
            builder = builder.with_allow_http(true);
        }
    }
    builder = builder.with_virtual_hosted_style_request(!path_style);
    if let Some(sse) = &lake.sse {
        builder = builder.with_config(
            "aws_server_side_encryption"
                .parse()
                .map_err(|e: object_store::Error| settings(e.to_string()))?,
            sse,
        );
    }
    if let Some(key) = &lake.sse_kms_key_id {
        builder = builder.with_config(
            "aws_sse_kms_key_id"
                .parse()
                .map_err(|e: object_store::Error| settings(e.to_string()))?,
            key,
        );
    }
    if lake.requester_pays {
        builder = builder.with_request_payer(true);
    }
    for (key, value) in &lake.options {
        let key: AmazonS3ConfigKey = key
            .parse()
            .map_err(|e: object_store::Error| settings(e.to_string()))?;
        builder = builder.with_config(key, value);
    }
    // Connection failures of one request are retried by object_store;
    // keep its wait short, as transfers are retried a level up too.
    builder = builder.with_config(
        AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
        "10s",
    );

    let env_keys = env_nonempty("AWS_ACCESS_KEY_ID").is_some()
        && env_nonempty("AWS_SECRET_ACCESS_KEY").is_some();
    let option = |key: &str| lake.options.contains_key(key);
    let mut credential_source = if env_keys || option("aws_access_key_id") {
        "static keys (AWS_ACCESS_KEY_ID)".to_owned()
    } else if env_nonempty("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
        "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, via STS)".to_owned()
    } else if env_nonempty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || env_nonempty("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
    {
        "container credentials (AWS_CONTAINER_CREDENTIALS_*)".to_owned()
    } else {
        "the instance metadata service (IMDSv2), as no other credentials were found".to_owned()
    };
    if !env_keys
        && !option("aws_access_key_id")
        && let Some(profile) = &profile
    {
        match profile.credentials()? {
            Some(ProfileCredentials::Provider(provider)) => {
                credential_source = format!("AWS profile `{}`", profile.name);
                builder = builder.with_credentials(provider);
            }
            Some(ProfileCredentials::WebIdentity {
                token_file,
                role_arn,
                session_name,
            }) => {
                credential_source =
                    format!("AWS profile `{}` (web identity, via STS)", profile.name);
                builder = builder
                    .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, token_file)
                    .with_config(AmazonS3ConfigKey::RoleArn, role_arn);
                if let Some(name) = session_name {
                    builder = builder.with_config(AmazonS3ConfigKey::RoleSessionName, name);
                }
            }
            None => {}
        }
    }
    let store = builder
        .build()
        .map_err(|e| settings(crate::transfer::error_chain(&e)))?;
    Ok(BuiltS3 {
        store,
        bucket_url,
        region,
        credential_source,
    })
}

fn join(base: &url::Url, bucket: &str) -> Result<url::Url, String> {
    url::Url::parse(&format!("{}/{bucket}", base.as_str().trim_end_matches('/')))
        .map_err(|e| e.to_string())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
