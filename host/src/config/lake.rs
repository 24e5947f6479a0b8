//! Resolving `[lake]` into a [`LakeLocation`]: which store, which bucket and
//! prefix, and the settings that apply to it.
//!
//! Owns: the lake URL schemes, bucket-name rules, and which settings belong to
//! which store (an S3-only setting on a GCS lake is a problem naming the
//! field). It must not open the store or read credentials: that is
//! `storage`'s job, at run time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::types::LakeConfig;

/// Where the lake is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    /// A local directory.
    Local(PathBuf),
    /// A bucket (or container) in an object store.
    Object(Box<ObjectLake>),
}

impl std::fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LakeLocation::Local(path) => write!(f, "{}", path.display()),
            LakeLocation::Object(lake) => f.write_str(&lake.url()),
        }
    }
}

/// The object store services a lake can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectService {
    /// AWS S3 or an S3-compatible store (MinIO, R2, Ceph).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage or ADLS Gen2.
    Azure,
    /// In-process memory (gone at exit).
    Memory,
}

impl ObjectService {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            ObjectService::S3 => "s3",
            ObjectService::Gcs => "gs",
            ObjectService::Azure => "az",
            ObjectService::Memory => "memory",
        }
    }
}

/// A lake in an object store, with every setting that applies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLake {
    /// The service.
    pub service: ObjectService,
    /// Bucket (S3, GCS) or container (Azure); empty for memory.
    pub bucket: String,
    /// Key prefix, without leading or trailing `/`.
    pub prefix: String,
    /// Custom endpoint (S3-compatible store, emulator).
    pub endpoint: Option<url::Url>,
    /// S3 region, when the file sets one.
    pub region: Option<String>,
    /// S3 path-style addressing; `None`: on for a custom endpoint.
    pub path_style: Option<bool>,
    /// S3 server-side encryption algorithm.
    pub sse: Option<String>,
    /// KMS key of `aws:kms` encryption.
    pub sse_kms_key_id: Option<String>,
    /// Storage class (or Azure access tier) of written objects.
    pub storage_class: Option<String>,
    /// S3 requester-pays.
    pub requester_pays: bool,
    /// Conditional writes, when the store supports them.
    pub conditional_writes: bool,
    /// Further `object_store` settings, by key.
    pub options: BTreeMap<String, String>,
    /// Local directory for staging files.
    pub staging: PathBuf,
}

impl ObjectLake {
    /// The lake's URL, for messages: `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        let mut url = format!("{}://{}", self.service.scheme(), self.bucket);
        if !self.prefix.is_empty() {
            url.push('/');
            url.push_str(&self.prefix);
        }
        url
    }

    /// Whether requests use path-style addressing.
    pub fn uses_path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }
}

/// S3 server-side encryption algorithms, as S3 names them.
const SSE_ALGORITHMS: [&str; 3] = ["AES256", "aws:kms", "aws:kms:dsse"];

/// Resolves `[lake]`; every problem goes to `problem` with its field.
pub(super) fn resolve_lake(
    base: &Path,
    config: &LakeConfig,
    problem: &mut impl FnMut(String, String),
) -> Option<LakeLocation> {
    let url = config.url.as_str();
    let Some((scheme, rest)) = url.split_once("://") else {
        reject_object_settings(config, "a local directory", problem);
        return Some(LakeLocation::Local(base.join(url)));
    };
    let mut options = config.options.clone();
    let (service, bucket, prefix) = match scheme {
        "file" => {
            reject_object_settings(config, "a local directory", problem);
            return Some(LakeLocation::Local(PathBuf::from(rest)));
        }
        "s3" | "s3a" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            (ObjectService::S3, bucket, prefix)
        }
        "gs" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            (ObjectService::Gcs, bucket, prefix)
        }
        "az" | "azure" => {
            let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            (ObjectService::Azure, container, prefix)
        }
        "abfs" | "abfss" => {
            // container@account.dfs.core.windows.net/prefix
            let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let Some((container, host)) = authority.split_once('@') else {
                problem(
                    "lake.url".into(),
                    format!(
                        "`{url}`: use {scheme}://container@account.dfs.core.windows.net/prefix"
                    ),
                );
                return None;
            };
            let account = host.split('.').next().unwrap_or_default();
            options
                .entry("azure_storage_account_name".into())
                .or_insert_with(|| account.to_owned());
            (ObjectService::Azure, container, prefix)
        }
        "memory" => (ObjectService::Memory, "", rest),
        _ => {
            problem(
                "lake.url".into(),
                format!(
                    "`{url}`: `{scheme}://` is not a lake; use a directory, file://, s3://, gs://, az://, abfss:// or memory://"
                ),
            );
            return None;
        }
    };
    let valid_bucket = match service {
        ObjectService::S3 | ObjectService::Gcs => {
            (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        }
        ObjectService::Azure => {
            (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }
        ObjectService::Memory => true,
    };
    if !valid_bucket {
        let noun = match service {
            ObjectService::Azure => "Azure container",
            ObjectService::Gcs => "GCS bucket",
            _ => "S3 bucket",
        };
        problem(
            "lake.url".into(),
            format!("`{url}`: `{bucket}` is not a valid {noun} name"),
        );
        return None;
    }
    let endpoint = match &config.endpoint {
        None => None,
        Some(text) => match url::Url::parse(text) {
            Ok(endpoint) if matches!(endpoint.scheme(), "http" | "https") => Some(endpoint),
            _ => {
                problem(
                    "lake.endpoint".into(),
                    format!("`{text}` is not an http(s) URL"),
                );
                None
            }
        },
    };
    if service != ObjectService::S3 {
        for (field, set) in [
            ("lake.region", config.region.is_some()),
            ("lake.path_style", config.path_style.is_some()),
            ("lake.sse", config.sse.is_some()),
            ("lake.sse_kms_key_id", config.sse_kms_key_id.is_some()),
            ("lake.requester_pays", config.requester_pays),
        ] {
            if set {
                problem(field.into(), "applies only to an s3:// lake".into());
            }
        }
    }
    if service == ObjectService::Memory {
        for (field, set) in [
            ("lake.endpoint", config.endpoint.is_some()),
            ("lake.storage_class", config.storage_class.is_some()),
        ] {
            if set {
                problem(field.into(), "does not apply to a memory:// lake".into());
            }
        }
    }
    if let Some(sse) = &config.sse
        && !SSE_ALGORITHMS.contains(&sse.as_str())
    {
        problem(
            "lake.sse".into(),
            format!("`{sse}`: use one of {}", SSE_ALGORITHMS.join(", ")),
        );
    }
    if config.sse_kms_key_id.is_some()
        && !config
            .sse
            .as_deref()
            .is_some_and(|s| s.starts_with("aws:kms"))
    {
        problem(
            "lake.sse_kms_key_id".into(),
            "needs sse = \"aws:kms\" or \"aws:kms:dsse\"".into(),
        );
    }
    for key in options.keys() {
        if let Err(message) = check_option(service, key) {
            problem(format!("lake.options.{key}"), message);
        }
    }
    let staging = config
        .staging_dir
        .as_ref()
        .map(|dir| base.join(dir))
        .unwrap_or_else(|| std::env::temp_dir().join("cryptolake-staging"));
    Some(LakeLocation::Object(Box::new(ObjectLake {
        service,
        bucket: bucket.to_owned(),
        prefix: prefix.trim_matches('/').to_owned(),
        endpoint,
        region: config.region.clone(),
        path_style: config.path_style,
        sse: config.sse.clone(),
        sse_kms_key_id: config.sse_kms_key_id.clone(),
        storage_class: config.storage_class.clone(),
        requester_pays: config.requester_pays,
        conditional_writes: config.conditional_writes,
        options,
        staging,
    })))
}

/// Whether `key` is a setting of `service`'s `object_store` builder, and not
/// one that `[lake]` has a field of its own for.
fn check_option(service: ObjectService, key: &str) -> Result<(), String> {
    let known = match service {
        ObjectService::S3 => object_store::aws::AmazonS3ConfigKey::from_str(key).is_ok(),
        ObjectService::Gcs => object_store::gcp::GoogleConfigKey::from_str(key).is_ok(),
        ObjectService::Azure => object_store::azure::AzureConfigKey::from_str(key).is_ok(),
        ObjectService::Memory => false,
    };
    if !known {
        return Err(format!(
            "`{key}` is not a setting of a {}:// lake",
            service.scheme()
        ));
    }
    let own_field = matches!(
        key.trim_start_matches("aws_"),
        "endpoint"
            | "endpoint_url"
            | "region"
            | "bucket"
            | "bucket_name"
            | "virtual_hosted_style_request"
            | "server_side_encryption"
            | "sse_kms_key_id"
            | "request_payer"
            | "conditional_put"
    );
    if own_field {
        return Err(format!(
            "`{key}` has a field of its own in [lake]; set that instead"
        ));
    }
    Ok(())
}

/// Settings that only an object store has, set on a local lake.
fn reject_object_settings(
    config: &LakeConfig,
    what: &str,
    problem: &mut impl FnMut(String, String),
) {
    for (field, set) in [
        ("lake.endpoint", config.endpoint.is_some()),
        ("lake.region", config.region.is_some()),
        ("lake.path_style", config.path_style.is_some()),
        ("lake.sse", config.sse.is_some()),
        ("lake.sse_kms_key_id", config.sse_kms_key_id.is_some()),
        ("lake.storage_class", config.storage_class.is_some()),
        ("lake.requester_pays", config.requester_pays),
        ("lake.options", !config.options.is_empty()),
    ] {
        if set {
            problem(
                field.into(),
                format!("applies only to an object store lake (s3://, gs://, az://), not {what}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(config: LakeConfig) -> (Option<LakeLocation>, Vec<(String, String)>) {
        let mut problems = Vec::new();
        let location = resolve_lake(Path::new("/etc/cryptolake"), &config, &mut |f, m| {
            problems.push((f, m))
        });
        (location, problems)
    }

    fn lake(url: &str) -> LakeConfig {
        LakeConfig {
            url: url.into(),
            ..LakeConfig::default()
        }
    }

    #[test]
    fn every_scheme_resolves_to_its_service() {
        for (url, service, bucket, prefix) in [
            (
                "s3://my-lake/crypto/",
                ObjectService::S3,
                "my-lake",
                "crypto",
            ),
            ("gs://my-lake", ObjectService::Gcs, "my-lake", ""),
            ("az://lake/a/b", ObjectService::Azure, "lake", "a/b"),
            (
                "abfss://lake@acct.dfs.core.windows.net/x",
                ObjectService::Azure,
                "lake",
                "x",
            ),
            ("memory://", ObjectService::Memory, "", ""),
        ] {
            let (location, problems) = resolve(lake(url));
            assert!(problems.is_empty(), "{url}: {problems:?}");
            let Some(LakeLocation::Object(object)) = location else {
                panic!("{url}: not an object lake");
            };
            assert_eq!(
                (
                    object.service,
                    object.bucket.as_str(),
                    object.prefix.as_str()
                ),
                (service, bucket, prefix),
                "{url}"
            );
        }
        let (location, _) = resolve(lake("abfss://lake@acct.dfs.core.windows.net/x"));
        let Some(LakeLocation::Object(object)) = location else {
            panic!("not an object lake");
        };
        assert_eq!(object.options["azure_storage_account_name"], "acct");
        assert_eq!(
            resolve(lake("data")).0,
            Some(LakeLocation::Local(PathBuf::from("/etc/cryptolake/data")))
        );
    }

    #[test]
    fn misplaced_and_unknown_settings_name_their_field() {
        let (_, problems) = resolve(lake("ftp://host/x"));
        assert_eq!(problems[0].0, "lake.url");
        assert!(problems[0].1.contains("ftp://"), "{problems:?}");

        let (_, problems) = resolve(LakeConfig {
            sse: Some("aws:kms".into()),
            ..lake("gs://my-lake")
        });
        assert_eq!(problems[0].0, "lake.sse");

        let (_, problems) = resolve(LakeConfig {
            sse: Some("rot13".into()),
            sse_kms_key_id: Some("k".into()),
            ..lake("s3://my-lake")
        });
        let fields: Vec<_> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["lake.sse", "lake.sse_kms_key_id"]);

        let (_, problems) = resolve(LakeConfig {
            options: [
                ("aws_nonsense".into(), "1".into()),
                ("aws_region".into(), "x".into()),
            ]
            .into(),
            ..lake("s3://my-lake")
        });
        let fields: Vec<_> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["lake.options.aws_nonsense", "lake.options.aws_region"]
        );

        let (_, problems) = resolve(LakeConfig {
            region: Some("eu-west-1".into()),
            ..lake("./lake")
        });
        assert_eq!(problems[0].0, "lake.region");

        let (_, problems) = resolve(lake("s3://Not_A_Bucket"));
        assert!(
            problems[0].1.contains("not a valid S3 bucket name"),
            "{problems:?}"
        );
    }

    #[test]
    fn path_style_is_on_by_default_only_for_a_custom_endpoint() {
        let (location, _) = resolve(lake("s3://my-lake"));
        let Some(LakeLocation::Object(aws)) = location else {
            panic!("not an object lake");
        };
        assert!(!aws.uses_path_style());
        let (location, _) = resolve(LakeConfig {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..lake("s3://my-lake")
        });
        let Some(LakeLocation::Object(minio)) = location else {
            panic!("not an object lake");
        };
        assert!(minio.uses_path_style());
    }
}
