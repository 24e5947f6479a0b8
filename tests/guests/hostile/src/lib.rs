//! A source plugin that misbehaves on purpose, one way per `mode` param, so
//! the host's containment can be tested: every mode must leave the host
//! running, name this plugin in the error, and leave the next call on a fresh
//! instance working (`mode = "ok"`).

use cryptolake_plugin_sdk::source::{Decoder, Guest, GuestDecoder};
use cryptolake_plugin_sdk::{
    Artifact, Batch, ChecksumSource, Column, ColumnValues, Compression, PartitionValues,
    PluginError, PluginInfo, Window, host,
};

#[derive(serde::Deserialize)]
struct Params {
    mode: String,
    #[serde(default)]
    url: Option<String>,
}

fn misbehave(mode: &str, url: Option<&str>) -> Result<(), PluginError> {
    match mode {
        "panic" => panic!("hostile plugin panics on purpose"),
        "loop" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "forbidden-host" => {
            let url = url.unwrap_or("http://forbidden.example/secret");
            host::get_ok(url).map(|_| ())
        }
        "metrics-flood" => {
            // A label value per point: an unbounded number of series.
            for i in 0..100_000u32 {
                host::counter_add_labelled("flood", 1, &[("id", &i.to_string())]);
            }
            Ok(())
        }
        "metrics-malformed" => {
            let long = "v".repeat(10_000);
            for (key, value) in [
                ("quote\"key", "v"),
                ("new\nline", "v"),
                ("plugin", "impostor"),
                ("le", "0.5"),
                ("__reserved", "v"),
                ("ok_key", long.as_str()),
            ] {
                host::counter_add_labelled("malformed", 1, &[(key, value)]);
            }
            host::gauge_set("not_finite", f64::NAN, &[]);
            host::gauge_set("infinite", f64::INFINITY, &[]);
            // A host metric's name, a name with Prometheus syntax in it,
            // and label values that need escaping: recorded as the plugin's
            // own, never as the host's.
            host::counter_add("cryptolake_rows_written_total", 1_000_000);
            host::counter_add("evil} 1\ncryptolake_up", 1);
            host::gauge_set("escaped", 1.0, &[("text", "a\"b\\c\nd")]);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn artifact(key: &str) -> Artifact {
    Artifact {
        key: key.to_owned(),
        url: format!("http://127.0.0.1:1/{key}"),
        s3: None,
        size: None,
        last_modified: None,
        etag: None,
        checksum: ChecksumSource::None,
        compression: Compression::None,
        partition: PartitionValues {
            exchange: "hostile".to_owned(),
            market: "spot".to_owned(),
            data_type: "klines".to_owned(),
            symbol: "EVIL".to_owned(),
            interval: Some("1m".to_owned()),
            period: "2024-01-01".to_owned(),
        },
    }
}

/// The exported plugin.
pub struct Hostile;

impl Guest for Hostile {
    type Decoder = HostileDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile".to_owned(),
            version: "0.0.1".to_owned(),
            description: "Misbehaves on purpose, for tests.".to_owned(),
            params_schema: r#"{"type":"object","required":["mode"]}"#.to_owned(),
        }
    }

    fn discover(params: String, _window: Window) -> Result<Vec<Artifact>, PluginError> {
        let params: Params = cryptolake_plugin_sdk::parse_params(&params)?;
        misbehave(&params.mode, params.url.as_deref())?;
        match params.mode.as_str() {
            "escape-key" => Ok(vec![artifact("../../etc/passwd")]),
            _ => Ok(vec![artifact("data/ok/EVIL-1m-2024-01-01.csv")]),
        }
    }
}

/// Decoder whose behaviour follows the mode given at `open`.
pub struct HostileDecoder(String);

impl GuestDecoder for HostileDecoder {
    fn open(params: String, _artifact: Artifact) -> Result<Decoder, PluginError> {
        let params: Params = cryptolake_plugin_sdk::parse_params(&params)?;
        Ok(Decoder::new(HostileDecoder(params.mode)))
    }

    fn push(&self, _chunk: Vec<u8>) -> Result<Vec<Batch>, PluginError> {
        let mode = self.0.strip_prefix("decode-").unwrap_or("");
        misbehave(mode, None)?;
        if mode == "ragged" {
            return Ok(vec![Batch {
                rows: 2,
                columns: vec![
                    Column {
                        name: "a".to_owned(),
                        values: ColumnValues::Int64(vec![1, 2]),
                        nulls: None,
                    },
                    Column {
                        name: "b".to_owned(),
                        values: ColumnValues::Float64(vec![1.0]),
                        nulls: None,
                    },
                ],
            }]);
        }
        Ok(Vec::new())
    }

    fn finish(&self) -> Result<Vec<Batch>, PluginError> {
        Ok(Vec::new())
    }
}

// Component exports exist only in the wasm build; natively the crate is a
// plain library (for unit tests and benchmarks).
#[cfg(target_arch = "wasm32")]
cryptolake_plugin_sdk::export_source_plugin!(Hostile);
