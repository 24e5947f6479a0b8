//! The Binance plugin's decoder, run as the agent runs it (WebAssembly with
//! SIMD), reads every number exactly as Rust's own parsers do: the guest
//! reads most numbers from one 16-byte block with SIMD lanes, which native
//! unit tests only check lane by lane.

use cryptolake::wit::{Artifact, Batch, ChecksumSource, ColumnValues, Compression};

use crate::support::{runtime, spot_btcusdt};

/// Random decimals of 1 to 19 digits with the point anywhere (or none),
/// some signed: every length around the 16-byte block, and both sides of
/// 2^53.
fn decimals(count: usize) -> Vec<String> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = format!("{}", state % 10u64.pow((state >> 59) as u32 % 19 + 1));
            let point = (state >> 32) as usize % (digits.len() + 2);
            let sign = ["", "", "", "-", "+"][(state >> 40) as usize % 5];
            match point {
                0 => format!("{sign}{digits}"),
                _ => format!("{sign}{}.{}", &digits[..point - 1], &digits[point - 1..]),
            }
        })
        .collect()
}

#[test]
fn the_wasm_decoder_reads_numbers_exactly_like_rust() {
    let plugin = runtime::builtin("binance", &[]);
    let values = decimals(8 * 4000);
    let mut csv = String::new();
    let mut lines = Vec::new();
    for (row, prices) in values.chunks(8).enumerate() {
        // µs timestamps (16 digits) and trade counts of every width.
        let open_time = 1_735_689_600_000_000_i64 + row as i64 * 1_000_000;
        let count = 7_i64.pow(row as u32 % 22);
        let fields = [
            open_time.to_string(),
            prices[0].clone(),
            prices[1].clone(),
            prices[2].clone(),
            prices[3].clone(),
            prices[4].clone(),
            (open_time + 999_999).to_string(),
            prices[5].clone(),
            count.to_string(),
            prices[6].clone(),
            prices[7].clone(),
        ];
        csv.push_str(&fields.join(","));
        // The unused last field, which every line has.
        csv.push_str(",0\n");
        lines.push(fields);
    }
    let artifact = Artifact {
        key: "data/spot/daily/klines/BTCUSDT/1s/BTCUSDT-1s-2025-01-01.zip".into(),
        url: "http://127.0.0.1:1/unused".into(),
        s3: None,
        size: None,
        last_modified: None,
        etag: None,
        checksum: ChecksumSource::None,
        compression: Compression::Zip,
        partition: spot_btcusdt("1s", "2025-01-01"),
    };
    let mut decoder = plugin
        .open_decoder(r#"{"symbols":["BTCUSDT"],"interval":"1s"}"#, &artifact)
        .expect("open");
    let mut batches: Vec<Batch> = decoder.push(csv.as_bytes()).expect("decodes");
    batches.extend(decoder.finish().expect("finishes"));

    // The decoder's columns follow the file's fields: all numbers, the
    // integers as `int64` or timestamps, the rest as `float64`.
    for (index, first) in batches[0].columns.iter().enumerate() {
        let name = &first.name;
        let decoded: Vec<String> = batches
            .iter()
            .flat_map(|batch| match &batch.columns[index].values {
                ColumnValues::Float64(v) => v.iter().map(|x| x.to_bits().to_string()).collect(),
                ColumnValues::Int64(v) | ColumnValues::TimestampUs(v) => {
                    v.iter().map(i64::to_string).collect::<Vec<_>>()
                }
                other => panic!("{name}: unexpected {other:?}"),
            })
            .collect();
        let integers = !matches!(first.values, ColumnValues::Float64(_));
        let expected: Vec<String> = lines
            .iter()
            .map(|fields| match integers {
                true => fields[index].parse::<i64>().unwrap().to_string(),
                false => fields[index].parse::<f64>().unwrap().to_bits().to_string(),
            })
            .collect();
        assert_eq!(decoded.len(), expected.len(), "{name}");
        for (row, (got, want)) in decoded.iter().zip(&expected).enumerate() {
            assert_eq!(
                got,
                want,
                "{name} of line {}: `{}`",
                row + 1,
                lines[row][index]
            );
        }
    }
    assert_eq!(batches[0].columns.len(), 11, "a kline's eleven fields");
}
