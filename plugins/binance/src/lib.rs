//! The Binance public-archive source connector.
//!
//! Owns: what exists in `data.binance.vision` (discovery by S3 ListObjects
//! v1 with marker pagination) and how its CSVs decode. It must not move or
//! verify bytes: the host downloads, checks `.CHECKSUM`s and unzips.

pub mod datatypes;
pub mod decoder;
pub mod discovery;
pub mod listing;
pub mod params;
pub mod rows;
pub mod symbols;

use std::cell::RefCell;

use cryptolake_plugin_sdk::source::{Decoder, Guest, GuestDecoder};
use cryptolake_plugin_sdk::{Artifact, Batch, PluginError, PluginInfo, Window, host};

use params::Params;

/// The exported plugin.
pub struct BinanceSource;

impl Guest for BinanceSource {
    type Decoder = FileDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "binance".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description:
                "Binance public data archive (data.binance.vision): klines for spot and futures."
                    .to_owned(),
            params_schema: params::SCHEMA.to_owned(),
        }
    }

    fn discover(params: String, window: Window) -> Result<Vec<Artifact>, PluginError> {
        let params = Params::parse(&params)?;
        let today = discovery::utc_date_of_micros(host::now_us());
        let sources = discovery::Sources {
            list: &mut |url: &str| {
                let response = host::get_ok(url)?;
                String::from_utf8(response.body)
                    .map_err(|_| PluginError::Transient(format!("listing at {url} is not UTF-8")))
            },
            probe: &mut |url: &str| {
                let response = host::fetch(host::Method::Get, url).map_err(host::http_error)?;
                match response.status {
                    200 => Ok(Some(discovery::Probed {
                        body: response.body,
                        etag: header(&response.headers, "etag"),
                        last_modified: header(&response.headers, "last-modified"),
                    })),
                    404 | 403 => Ok(None),
                    429 | 500..=599 => Err(PluginError::Transient(format!(
                        "{url} answered {}",
                        response.status
                    ))),
                    status => Err(PluginError::Internal(format!("{url} answered {status}"))),
                }
            },
        };
        let artifacts = discovery::discover(&params, &window, &today, sources)?;
        host::counter_add("artifacts_listed", artifacts.len() as u64);
        Ok(artifacts)
    }
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// A decoder resource: one archive file.
pub struct FileDecoder(RefCell<decoder::CsvDecoder>);

impl GuestDecoder for FileDecoder {
    fn open(params: String, artifact: Artifact) -> Result<Decoder, PluginError> {
        let params = Params::parse(&params)?;
        let layout =
            datatypes::layout(&artifact.partition.data_type, params.market).ok_or_else(|| {
                PluginError::InvalidParams(format!(
                    "no decoder for data type `{}`",
                    artifact.partition.data_type
                ))
            })?;
        let decoder = if datatypes::by_header(&artifact.partition.data_type) {
            decoder::CsvDecoder::by_header(layout, params.batch_rows)
        } else {
            decoder::CsvDecoder::new(layout, params.batch_rows)
        }
        .checking(
            rows::RowChecks::for_artifact(layout, &artifact.partition)
                .filter(|_| params.check_rows),
        );
        Ok(Decoder::new(FileDecoder(RefCell::new(decoder))))
    }

    fn push(&self, chunk: Vec<u8>) -> Result<Vec<Batch>, PluginError> {
        self.0.borrow_mut().push(&chunk)
    }

    fn finish(&self) -> Result<Vec<Batch>, PluginError> {
        self.0.borrow_mut().finish()
    }
}

// Component exports exist only in the wasm build; natively the crate is a
// plain library (for unit tests and benchmarks).
#[cfg(target_arch = "wasm32")]
cryptolake_plugin_sdk::export_source_plugin!(BinanceSource);
