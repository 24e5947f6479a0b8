//! Azure Blob Storage and ADLS Gen2 lakes on `object_store`'s
//! `MicrosoftAzure`.
//!
//! Owns: building the store. The account comes from `abfss://` URLs,
//! `options.azure_storage_account_name` or `AZURE_STORAGE_ACCOUNT_NAME`.
//! Credentials are `object_store`'s chain: an account key
//! (`AZURE_STORAGE_ACCOUNT_KEY`), a SAS (`AZURE_STORAGE_SAS_KEY`), a service
//! principal (`AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` + `AZURE_TENANT_ID`),
//! workload identity (`AZURE_FEDERATED_TOKEN_FILE`, AKS), then managed identity
//! (IMDS). `endpoint` reaches Azurite or another emulator.

use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};

use crate::config::ObjectLake;

/// Builds the store for an `az://` lake.
pub fn build(lake: &ObjectLake, http: &reqwest::Client) -> object_store::Result<MicrosoftAzure> {
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_container_name(&lake.bucket)
        .with_http_connector(super::http::AgentConnector::new(http.clone()));
    for (key, value) in &lake.options {
        let key: AzureConfigKey = key.parse()?;
        builder = builder.with_config(key, value);
    }
    if let Some(endpoint) = &lake.endpoint {
        builder = builder
            .with_endpoint(endpoint.as_str().trim_end_matches('/').to_owned())
            .with_allow_http(endpoint.scheme() == "http");
    }
    builder.build()
}
