//! Credentials and region from the AWS shared config and credentials files,
//! as the AWS CLI reads them.
//!
//! Owns: finding the files (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`,
//! else `~/.aws/config` and `~/.aws/credentials`) and the profile
//! (`AWS_PROFILE`, else `default`), and what a profile can give:
//! - static keys (`aws_access_key_id`, `aws_secret_access_key`,
//!   `aws_session_token`), the credentials file's taking precedence;
//! - `credential_process`: a command printing the credentials as JSON (AWS's
//!   `Version: 1` format), run again before its `Expiration`. This is also how
//!   an SSO or assumed-role profile is used:
//!   `credential_process = aws configure export-credentials --profile NAME --format process`;
//! - `web_identity_token_file` with `role_arn`, handed to `object_store`'s
//!   web-identity provider;
//! - `region`.
//!
//! A profile with `sso_session`/`sso_start_url` or `role_arn` + `source_profile`
//! and none of the above is refused with that advice, rather than silently
//! falling through to another credential source.
//! It must not log or return secrets in messages.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use object_store::aws::AwsCredential;
use object_store::{CredentialProvider, StaticCredentialProvider};

use super::StorageError;

/// Refresh process credentials this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// One profile's settings, merged from both files.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// Its region, if set.
    pub region: Option<String>,
    settings: BTreeMap<String, String>,
}

/// The credentials a profile gives.
pub enum ProfileCredentials {
    /// Static keys or a credential process.
    Provider(object_store::aws::AwsCredentialProvider),
    /// A web identity token to exchange with STS.
    WebIdentity {
        /// The token file.
        token_file: String,
        /// The role to assume.
        role_arn: String,
        /// `role_session_name`, if set.
        session_name: Option<String>,
    },
}

impl Profile {
    /// The profile the environment selects, or `None` when neither file
    /// exists (or `AWS_PROFILE` is unset and they have no `default`).
    pub fn from_env() -> Result<Option<Self>, StorageError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let path = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let explicit = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
        let name = explicit.clone().unwrap_or_else(|| "default".to_owned());
        let error = |message: String| StorageError::Profile {
            profile: name.clone(),
            message,
        };
        let read = |file: Option<PathBuf>| -> Result<Option<String>, StorageError> {
            let Some(file) = file else { return Ok(None) };
            match std::fs::read_to_string(&file) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(error(format!("{}: {e}", file.display()))),
            }
        };
        let config = read(path("AWS_CONFIG_FILE", "config"))?;
        let credentials = read(path("AWS_SHARED_CREDENTIALS_FILE", "credentials"))?;
        let config_section = if name == "default" {
            "default".to_owned()
        } else {
            format!("profile {name}")
        };
        let mut settings = BTreeMap::new();
        let mut found = false;
        if let Some(text) = &config
            && let Some(section) = ini_section(text, &config_section)
        {
            found = true;
            settings.extend(section);
        }
        if let Some(text) = &credentials
            && let Some(section) = ini_section(text, &name)
        {
            found = true;
            settings.extend(section);
        }
        if !found {
            return match explicit {
                Some(_) => Err(error(
                    "is in neither the shared config nor the credentials file".into(),
                )),
                None => Ok(None),
            };
        }
        Ok(Some(Profile {
            region: settings.get("region").cloned(),
            name,
            settings,
        }))
    }

    /// What the profile gives to sign with, `None` when it only sets other
    /// things (a region, say).
    pub fn credentials(&self) -> Result<Option<ProfileCredentials>, StorageError> {
        let error = |message: &str| StorageError::Profile {
            profile: self.name.clone(),
            message: message.to_owned(),
        };
        let get = |key: &str| self.settings.get(key).filter(|v| !v.is_empty()).cloned();
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(key_id), Some(secret_key)) => {
                let credential = AwsCredential {
                    key_id,
                    secret_key,
                    token: get("aws_session_token"),
                };
                return Ok(Some(ProfileCredentials::Provider(Arc::new(
                    StaticCredentialProvider::new(credential),
                ))));
            }
            (Some(_), None) => {
                return Err(error("has aws_access_key_id but no aws_secret_access_key"));
            }
            (None, Some(_)) => {
                return Err(error("has aws_secret_access_key but no aws_access_key_id"));
            }
            (None, None) => {}
        }
        if let Some(command) = get("credential_process") {
            return Ok(Some(ProfileCredentials::Provider(Arc::new(
                ProcessCredentials::new(self.name.clone(), command),
            ))));
        }
        if let (Some(token_file), Some(role_arn)) =
            (get("web_identity_token_file"), get("role_arn"))
        {
            return Ok(Some(ProfileCredentials::WebIdentity {
                token_file,
                role_arn,
                session_name: get("role_session_name"),
            }));
        }
        if get("sso_session").is_some() || get("sso_start_url").is_some() {
            return Err(error(
                "is an SSO profile; cryptolake reads it through the AWS CLI: set credential_process = aws configure export-credentials --profile NAME --format process in a profile of its own",
            ));
        }
        if get("role_arn").is_some() {
            return Err(error(
                "assumes a role (role_arn); cryptolake reads it through the AWS CLI: set credential_process = aws configure export-credentials --profile NAME --format process in a profile of its own",
            ));
        }
        Ok(None)
    }
}

/// The `key = value` lines of `[section]` in an INI text, keys lowercased.
fn ini_section(text: &str, section: &str) -> Option<BTreeMap<String, String>> {
    let mut current: Option<&str> = None;
    let mut found = None::<BTreeMap<String, String>>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            current = Some(name);
            if name == section {
                found.get_or_insert_with(BTreeMap::new);
            }
            continue;
        }
        if current == Some(section)
            && let Some((key, value)) = line.split_once('=')
            && let Some(map) = found.as_mut()
        {
            map.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    found
}

/// Credentials from a `credential_process`, cached until shortly before they
/// expire (forever, when the process gives no `Expiration`).
pub struct ProcessCredentials {
    profile: String,
    command: String,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl std::fmt::Debug for ProcessCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCredentials")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl ProcessCredentials {
    fn new(profile: String, command: String) -> Self {
        Self {
            profile,
            command,
            cached: tokio::sync::Mutex::new(None),
        }
    }
}

/// Runs a credential process and reads what it printed.
fn run_process(command: &str) -> Result<(AwsCredential, Option<SystemTime>), String> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("could not start the credential_process: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "the credential_process exited with {}: {}",
            output.status,
            stderr.trim().chars().take(400).collect::<String>()
        ));
    }
    parse_process_output(&output.stdout)
}

/// Parses a credential process's JSON (`Version` 1).
fn parse_process_output(stdout: &[u8]) -> Result<(AwsCredential, Option<SystemTime>), String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        version: u32,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        expiration: Option<String>,
    }
    let output: Output = serde_json::from_slice(stdout)
        .map_err(|e| format!("the credential_process printed no credentials JSON ({e})"))?;
    if output.version != 1 {
        return Err(format!(
            "the credential_process printed Version {}; only 1 is defined",
            output.version
        ));
    }
    let expiration = match output.expiration {
        None => None,
        Some(text) => {
            let at =
                time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("Expiration `{text}` is not an RFC 3339 time ({e})"))?;
            Some(SystemTime::from(at))
        }
    };
    Ok((
        AwsCredential {
            key_id: output.access_key_id,
            secret_key: output.secret_access_key,
            token: output.session_token,
        },
        expiration,
    ))
}

#[async_trait::async_trait]
impl CredentialProvider for ProcessCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref() {
            let fresh = expiry.is_none_or(|at| {
                at.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_BEFORE)
            });
            if fresh {
                return Ok(Arc::clone(credential));
            }
        }
        let command = self.command.clone();
        let ran = tokio::task::spawn_blocking(move || run_process(&command))
            .await
            .unwrap_or_else(|e| Err(format!("the credential_process did not finish: {e}")));
        let (credential, expiry) = ran.map_err(|message| object_store::Error::Generic {
            store: "S3",
            source: format!("AWS profile `{}`: {message}", self.profile).into(),
        })?;
        let credential = Arc::new(credential);
        *cached = Some((Arc::clone(&credential), expiry));
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_read_with_comments_and_spaces() {
        let text = "# comment\n[default]\nregion = eu-west-1\n\n[profile lake]\nAWS_ACCESS_KEY_ID=AKIA\n; x\naws_secret_access_key = s = 1\n";
        assert_eq!(ini_section(text, "default").unwrap()["region"], "eu-west-1");
        let lake = ini_section(text, "profile lake").unwrap();
        assert_eq!(lake["aws_access_key_id"], "AKIA");
        assert_eq!(lake["aws_secret_access_key"], "s = 1");
        assert!(ini_section(text, "other").is_none());
    }

    #[test]
    fn process_output_is_version_one_json() {
        let (credential, expiry) = parse_process_output(
            br#"{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SK","SessionToken":"T","Expiration":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            (credential.key_id.as_str(), credential.token.as_deref()),
            ("AK", Some("T"))
        );
        assert!(expiry.is_some());
        assert!(
            parse_process_output(br#"{"Version":2,"AccessKeyId":"a","SecretAccessKey":"b"}"#)
                .is_err()
        );
        assert!(parse_process_output(b"not json").is_err());
    }
}
