//! The S3 server of `bench/s3-sync/run.sh`: s3s-fs (a Rust S3 implementation
//! on a directory, the server the tests use where signatures must be
//! checked) with the two things the benchmark needs and s3s-fs 0.14 lacks:
//!
//! - a public-read bucket: anonymous `GetObject`, `HeadObject` and listings
//!   of the source bucket are allowed, as the bucket policy allows them on
//!   `data.binance.vision`; everything else needs a valid SigV4 signature;
//! - `CopyObject` with `x-amz-checksum-algorithm: SHA256` answers the copy's
//!   SHA-256, computed from the copied file, as S3 does.
//!
//! `GET /__bench/requests` answers the number of S3 requests served, then
//! the count per HTTP method (`4000 GET=2000 PUT=2000`).
//!
//! usage: cryptolake-bench-s3-server ROOT PORT PUBLIC_BUCKET ACCESS_KEY SECRET_KEY

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use hyper::service::service_fn;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::path::S3Path;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use sha2::{Digest, Sha256};

/// HTTP methods counted apart; the last counts any other.
const METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "POST", "DELETE", "OTHER"];
/// Where refused and failed requests (status ≥ 400) are counted.
const ERRORS: usize = METHODS.len();

struct PublicRead {
    bucket: String,
}

#[async_trait::async_trait]
impl S3Access for PublicRead {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        let read = matches!(
            cx.s3_op().name(),
            "GetObject" | "HeadObject" | "ListObjects" | "ListObjectsV2"
        );
        let public = match cx.s3_path() {
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => **bucket == *self.bucket,
            S3Path::Root => false,
        };
        if read && public {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied))
        }
    }
}

struct Bench {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

#[async_trait::async_trait]
impl S3 for Bench {
    // Every operation s3s-fs implements, unchanged, but CopyObject.
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.fs.delete_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.fs.get_object(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.fs.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.fs.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let wants_sha256 = req
            .input
            .checksum_algorithm
            .as_ref()
            .is_some_and(|a| a.as_str() == ChecksumAlgorithm::SHA256);
        let destination = self.root.join(&req.input.bucket).join(&req.input.key);
        let mut response = self.fs.copy_object(req).await?;
        if wants_sha256 {
            let bytes = tokio::fs::read(&destination)
                .await
                .map_err(|_| s3_error!(InternalError))?;
            let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
            let result = response
                .output
                .copy_object_result
                .get_or_insert_with(Default::default);
            result.checksum_sha256 = Some(digest);
        }
        Ok(response)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, port, public_bucket, access_key, secret_key] = &args[..] else {
        return Err(
            "usage: cryptolake-bench-s3-server ROOT PORT PUBLIC_BUCKET ACCESS_KEY SECRET_KEY"
                .into(),
        );
    };
    let root = std::fs::canonicalize(root)?;
    let service = {
        let fs = s3s_fs::FileSystem::new(&root).map_err(|e| format!("{e:?}"))?;
        let mut builder = S3ServiceBuilder::new(Bench { fs, root });
        builder.set_auth(SimpleAuth::from_single(
            access_key.as_str(),
            secret_key.as_str(),
        ));
        builder.set_access(PublicRead {
            bucket: public_bucket.clone(),
        });
        builder.build()
    };
    let requests: Arc<[AtomicU64; 7]> = Arc::new(Default::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>()?)).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (socket, _) = listener.accept().await?;
        let (service, requests) = (service.clone(), Arc::clone(&requests));
        tokio::spawn(async move {
            let handler = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (service, requests) = (service.clone(), Arc::clone(&requests));
                async move {
                    if req.uri().path() == "/__bench/requests" {
                        let counts: Vec<u64> =
                            requests.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                        let mut text = counts[..ERRORS].iter().sum::<u64>().to_string();
                        for (method, count) in METHODS.iter().zip(&counts) {
                            text.push_str(&format!(" {method}={count}"));
                        }
                        text.push_str(&format!(" status>=400: {}", counts[ERRORS]));
                        return Ok::<_, Infallible>(hyper::Response::new(s3s::Body::from(text)));
                    }
                    let method = METHODS
                        .iter()
                        .position(|m| *m == req.method().as_str())
                        .unwrap_or(METHODS.len() - 1);
                    requests[method].fetch_add(1, Ordering::Relaxed);
                    match service.call(req.map(s3s::Body::from)).await {
                        Ok(response) => {
                            if response.status().as_u16() >= 400 {
                                requests[ERRORS].fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(response)
                        }
                        Err(_) => {
                            requests[ERRORS].fetch_add(1, Ordering::Relaxed);
                            let mut response = hyper::Response::new(s3s::Body::empty());
                            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                            Ok(response)
                        }
                    }
                }
            });
            let io = hyper_util::rt::TokioIo::new(socket);
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, handler)
                .await;
        });
    }
}
