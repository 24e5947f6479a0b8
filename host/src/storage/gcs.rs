//! Google Cloud Storage lakes on `object_store`'s `GoogleCloudStorage`.
//!
//! Owns: building the store. Credentials are `object_store`'s chain:
//! `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_SERVICE_ACCOUNT_PATH` (a service-account
//! key file), `GOOGLE_SERVICE_ACCOUNT_KEY` (its JSON), then application default
//! credentials (`GOOGLE_APPLICATION_CREDENTIALS`, `gcloud`'s file), then the
//! metadata server (GKE workload identity, GCE). An emulator is reached with
//! `endpoint`, anonymously.

use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey};

use crate::config::ObjectLake;

/// Builds the store for a `gs://` lake.
pub fn build(
    lake: &ObjectLake,
    http: &reqwest::Client,
) -> object_store::Result<GoogleCloudStorage> {
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&lake.bucket)
        .with_http_connector(super::http::AgentConnector::new(http.clone()));
    for (key, value) in &lake.options {
        let key: GoogleConfigKey = key.parse()?;
        builder = builder.with_config(key, value);
    }
    if let Some(endpoint) = &lake.endpoint {
        // The documented way to an emulator: a service-account key naming
        // the base URL, with OAuth off.
        let key = serde_json::json!({
            "gcs_base_url": endpoint.as_str().trim_end_matches('/'),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        builder = builder
            .with_service_account_key(key.to_string())
            .with_client_options(
                object_store::ClientOptions::new().with_allow_http(endpoint.scheme() == "http"),
            );
    }
    builder.build()
}
