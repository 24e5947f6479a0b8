//! AWS Signature Version 4 for S3 requests the host sends itself (writes to
//! a destination bucket, server-side copies, seeding test servers).
//!
//! Owns: the canonical request, string to sign and signing key, per the AWS
//! specification. Credentials are the operator's; they never reach plugins.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// An access key pair (and session token, for temporary credentials).
#[derive(Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// SHA-256 of an empty payload.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Lowercase hex SHA-256 of a payload.
pub fn payload_hash(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

/// Signs a request: returns the headers to add (`x-amz-date`,
/// `x-amz-content-sha256`, optionally `x-amz-security-token`, and
/// `authorization`). `headers` are the other headers to sign (lowercase
/// names); `host` is always signed. `amz_date` is `YYYYMMDDTHHMMSSZ`.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    url: &url::Url,
    headers: &[(&str, &str)],
    payload_sha256: &str,
    credentials: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Vec<(String, String)> {
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    };
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    signed.push(("host".into(), host));
    signed.push(("x-amz-content-sha256".into(), payload_sha256.to_owned()));
    signed.push(("x-amz-date".into(), amz_date.to_owned()));
    if let Some(token) = &credentials.session_token {
        signed.push(("x-amz-security-token".into(), token.clone()));
    }
    signed.sort();
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = signed
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (uri_encode(&k, true), uri_encode(&v, true)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    // The URL's path is already percent-encoded once, which is what S3
    // expects in the canonical request.
    let canonical_request = format!(
        "{method}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}",
        url.path()
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = [date, region, service, "aws4_request"].iter().fold(
        format!("AWS4{}", credentials.secret_access_key).into_bytes(),
        |key, part| hmac(&key, part.as_bytes()),
    );
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    let mut out = vec![
        ("x-amz-date".to_owned(), amz_date.to_owned()),
        ("x-amz-content-sha256".to_owned(), payload_sha256.to_owned()),
    ];
    if let Some(token) = &credentials.session_token {
        out.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    out.push((
        "authorization".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    ));
    out
}

/// The current time as `YYYYMMDDTHHMMSSZ`.
pub fn amz_date_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(time::macros::format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .unwrap_or_default()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// URI-encodes per SigV4: unreserved characters stay, everything else is
/// `%XX`; `/` stays unless `encode_slash`. Object keys are sent encoded this
/// way, so the path on the wire is exactly the canonical one.
pub fn uri_encode(value: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "GET Object" example of the AWS S3 SigV4 documentation.
    #[test]
    fn matches_the_aws_documentation_example() {
        let credentials = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let url = url::Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let headers = sign(
            "GET",
            &url,
            &[("range", "bytes=0-9")],
            EMPTY_SHA256,
            &credentials,
            "us-east-1",
            "s3",
            "20130524T000000Z",
        );
        let authorization = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let credentials = Credentials {
            access_key_id: "id".into(),
            secret_access_key: "very-secret".into(),
            session_token: None,
        };
        assert!(!format!("{credentials:?}").contains("very-secret"));
    }
}
