//! Tests of the CSV helpers, against the general parsers of the standard
//! library as the reference.

use super::lines::*;
use super::numbers::*;
use super::time::*;
use super::*;
use crate::PluginError;

fn collect(chunks: &[&[u8]]) -> Vec<(u64, String)> {
    let mut reader = LineReader::new();
    let mut out = Vec::new();
    for chunk in chunks {
        reader
            .push::<PluginError>(chunk, |n, l| {
                out.push((n, l.to_owned()));
                Ok(())
            })
            .unwrap();
    }
    reader
        .finish::<PluginError>(|n, l| {
            out.push((n, l.to_owned()));
            Ok(())
        })
        .unwrap();
    out
}

fn malformed_line(error: PluginError) -> (Option<u64>, String) {
    match error {
        PluginError::MalformedInput(malformed) => (malformed.line, malformed.message),
        other => panic!("malformed input expected: {other:?}"),
    }
}

#[test]
fn a_line_without_end_is_malformed_once_it_passes_the_limit() {
    let mut reader = LineReader::with_max_line_bytes(1000);
    let mut seen = Vec::new();
    let mut on_line = |n: u64, line: &str| {
        seen.push((n, line.len()));
        Ok::<(), PluginError>(())
    };
    reader.push(b"first\n", &mut on_line).unwrap();
    let zeros = [0u8; 300];
    let mut pushed = 0;
    let error = loop {
        match reader.push(&zeros, &mut on_line) {
            Ok(()) => pushed += zeros.len(),
            Err(error) => break error,
        }
        assert!(
            pushed < 10_000,
            "a 1,000-byte limit must stop a line without end"
        );
    };
    assert_eq!(pushed, 900, "the fourth chunk passes the limit");
    let (line, message) = malformed_line(error);
    assert_eq!(line, Some(2));
    assert!(message.contains("longer than 1000 bytes"), "{message}");
    assert_eq!(seen, vec![(1, 5)]);
}

#[test]
fn a_complete_line_over_the_limit_is_malformed_and_one_at_it_is_not() {
    let at_limit = format!("{}\r\n", "7".repeat(64));
    let over = format!("{}\n", "7".repeat(65));
    let mut reader = LineReader::with_max_line_bytes(64);
    let mut seen = 0;
    // The `\r\n` split across two chunks, then a whole chunk of lines.
    reader
        .push(&at_limit.as_bytes()[..65], |_, _| Ok::<(), PluginError>(()))
        .unwrap();
    reader
        .push(&at_limit.as_bytes()[65..], |_, line| {
            seen += line.len();
            Ok::<(), PluginError>(())
        })
        .unwrap();
    assert_eq!(seen, 64);
    let error = reader
        .push(format!("{at_limit}{over}").as_bytes(), |_, _| {
            Ok::<(), PluginError>(())
        })
        .unwrap_err();
    assert_eq!(malformed_line(error).0, Some(3));
}

#[test]
fn invalid_utf8_names_its_line() {
    let mut reader = LineReader::new();
    let mut seen = Vec::new();
    let error = reader
        .push(b"a,1\nb,2\nc,\xff\nd,4\n", |n, line| {
            seen.push((n, line.to_owned()));
            Ok::<(), PluginError>(())
        })
        .unwrap_err();
    let PluginError::MalformedInput(malformed) = error else {
        panic!("malformed input expected: {error:?}");
    };
    assert_eq!(malformed.line, Some(3));
    assert!(malformed.message.contains("UTF-8"), "{}", malformed.message);
    assert_eq!(seen, vec![(1, "a,1".to_owned()), (2, "b,2".to_owned())]);
}

#[test]
fn integers_parse_like_str_parse() {
    for text in [
        "0",
        "7",
        "-12",
        "+12",
        "1735689600000000",
        // Runs of 8, 9, 16 and 17 digits: where the parser reads
        // another word, or falls back to its loop.
        "12345678",
        "123456789",
        "1234567890123456",
        "12345678901234567",
        "999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        assert_eq!(
            parse_int(text, 1, "c").ok(),
            text.parse::<i64>().ok(),
            "{text}"
        );
    }
    for bad in [
        "",
        "-",
        "+",
        "1.5",
        "12a",
        "9223372036854775808",
        "1 2",
        "12345678a",
        "1234567812345678a",
        "123456781234567a8",
    ] {
        assert!(parse_int(bad, 1, "c").is_err(), "{bad:?}");
    }
    assert_eq!(parse_int(" 42 ", 1, "c").ok(), Some(42));
}

/// 20,000 random runs of 1 to 16 digits (xorshift from `seed`), each
/// shaped by `shape` with a random number to place a point by.
fn random_numbers(seed: u64, shape: impl Fn(String, usize) -> String) -> Vec<String> {
    let mut state = seed;
    (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = format!("{}", state % 10u64.pow((state >> 60) as u32 + 1));
            shape(digits, (state >> 32) as usize)
        })
        .collect()
}

/// Numbers read from one block (as guests read them) and word by word
/// (as native builds do) agree, whatever follows them in the line.
#[test]
fn blocks_and_words_read_numbers_alike() {
    let mut cases: Vec<String> = [
        "0",
        "-0",
        "+7",
        "1.",
        ".5",
        "-.5",
        ".",
        "-",
        "1.2.3",
        "12a",
        "93000.12",
        "42283.58000000",
        "1519032.06433720",
        "9007199254740991",
        "9007199254740993",
        "1735689600000000",
        "17356896000000001",
        "1234567.87654321",
        "123456789012345.6",
        "0.000000000000001",
        "1e5",
        " 5",
        "5 ",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // Random numbers of every length, with a point anywhere or none.
    cases.extend(random_numbers(
        0x9e37_79b9_7f4a_7c15,
        |digits, place| match place % (digits.len() + 2) {
            0 => digits,
            point => format!("{}.{}", &digits[..point - 1], &digits[point - 1..]),
        },
    ));
    for text in &cases {
        // Followed by a field, by the line's end, and by a bad byte.
        for line in [
            format!("{text},1,2,3,4,5,6,7,8"),
            text.clone(),
            format!("{text}x2345678901234567"),
        ] {
            let bytes = line.as_bytes();
            let decimal =
                |blocks| read_plain_decimal(bytes, 0, blocks).map(|(v, end)| (v.to_bits(), end));
            assert_eq!(decimal(true), decimal(false), "{line}");
            assert_eq!(
                read_plain_int(bytes, 0, true),
                read_plain_int(bytes, 0, false),
                "{line}"
            );
        }
    }
}

#[test]
fn decimals_parse_exactly_like_str_parse() {
    let mut cases: Vec<String> = [
        "0",
        "-0",
        "+0",
        "0.0",
        "-0.0",
        "1.",
        ".5",
        "-.5",
        "93000.12",
        "0.00000001",
        "0.12345678",
        "12345.12345678",
        "9007199254740991",
        "9007199254740992",
        "9007199254740993",
        "0.9007199254740993",
        "123456789012345678",
        "1e5",
        "1.5E-3",
        "0.0000000000000000000001",
        "0.00000000000000000000001",
        "00000000000000000001",
        "1234567890123456789",
        "12345678901234567890",
        "12345678901234567.5",
        "1.12345678901234567",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // Random decimals of every length and point position.
    cases.extend(random_numbers(0x2545_f491_4f6c_dd1d, |digits, place| {
        let point = place % (digits.len() + 1);
        format!("{}.{}", &digits[..point], &digits[point..])
    }));
    for text in &cases {
        let expected = text.parse::<f64>().ok();
        assert_eq!(
            parse_float(text, 1, "c").ok().map(f64::to_bits),
            expected.map(f64::to_bits),
            "{text}"
        );
    }
    for bad in [
        "",
        "-",
        ".",
        "1.2.3",
        "12a",
        "1,5",
        "nan",
        "inf",
        "--1",
        "1234567a.5",
        "0.1234567:",
        "12/45678",
        "9999999/.99999999",
    ] {
        assert!(parse_float(bad, 1, "c").is_err(), "{bad:?}");
    }
}

#[test]
fn fields_split_like_str_split() {
    for line in ["a,b,,c", "", ",", "x", "1,2,3,", ",lead", "é,ü,ß"] {
        assert_eq!(
            fields(line).collect::<Vec<_>>(),
            line.split(',').collect::<Vec<_>>(),
            "{line:?}"
        );
    }
}

#[test]
fn lines_split_across_chunks_crlf_and_no_final_newline() {
    let lines = collect(&[b"a,1\r\nb,", b"2\r", b"\n\nc,3"]);
    assert_eq!(
        lines,
        vec![(1, "a,1".into()), (2, "b,2".into()), (4, "c,3".into())]
    );
}

#[test]
fn one_byte_chunks_give_the_same_lines() {
    let text = b"x,1\ny,2\r\nz,3\n";
    let chunks: Vec<&[u8]> = text.chunks(1).collect();
    assert_eq!(collect(&chunks).len(), 3);
}

#[test]
fn header_detection_is_by_content() {
    assert!(is_header("open_time,open,high"));
    assert!(!is_header("1704067200000,42283.58,42298.62"));
}

#[test]
fn epoch_units_by_magnitude() {
    assert_eq!(EpochUnit::detect(1_704_067_200), Some(EpochUnit::Seconds));
    assert_eq!(
        EpochUnit::detect(1_704_067_200_000),
        Some(EpochUnit::Millis)
    );
    assert_eq!(
        EpochUnit::detect(1_735_689_600_000_000),
        Some(EpochUnit::Micros)
    );
    assert_eq!(EpochUnit::detect(42), None);
}

#[test]
fn a_file_mixing_units_is_malformed() {
    let mut n = EpochNormalizer::default();
    assert_eq!(
        n.micros("1704067200000", 1, "t").unwrap(),
        1_704_067_200_000_000
    );
    let err = n.micros("1735689600000000", 2, "t").unwrap_err();
    assert!(matches!(err, PluginError::MalformedInput(m) if m.line == Some(2)));
}

#[test]
fn the_cursor_reads_what_the_general_path_reads_or_declines() {
    let fields_seen = [
        "0",
        "-12",
        "+7",
        "93000.12",
        "0.00000001",
        "1.",
        ".5",
        "-.5",
        "-0",
        "",
        " 1",
        "1 ",
        "1e5",
        "nan",
        "True",
        "false",
        "FALSE",
        "yes",
        "BTCUSDT",
        " x",
        "1735689600000000",
        "1234567890123456789",
        "9007199254740993",
        "12345678901234567890",
        "1.2.3",
        "é",
    ];
    for field in fields_seen {
        for line in [field.to_owned(), format!("{field},next")] {
            let general_float = parse_float(field, 1, "c").ok().map(f64::to_bits);
            if let Some(value) = FieldCursor::new(&line).decimal() {
                assert_eq!(Some(value.to_bits()), general_float, "{line:?}");
            }
            if let Some(value) = FieldCursor::new(&line).integer() {
                assert_eq!(Some(value), parse_int(field, 1, "c").ok(), "{line:?}");
            }
            if let Some(value) = FieldCursor::new(&line).boolean() {
                assert_eq!(Some(value), parse_bool(field, 1, "c").ok(), "{line:?}");
            }
            if let Some(value) = FieldCursor::new(&line).text() {
                assert_eq!(value, field.trim_ascii(), "{line:?}");
                assert!(!value.is_empty());
            }
        }
    }
    // The plain forms are taken, the rest declined.
    assert_eq!(FieldCursor::new("93000.12").decimal(), Some(93000.12));
    assert_eq!(FieldCursor::new("1e5").decimal(), None);
    assert_eq!(FieldCursor::new(" 1").integer(), None);
    assert_eq!(FieldCursor::new("").text(), None);
    assert_eq!(FieldCursor::new("True").boolean(), Some(true));
}

#[test]
fn the_cursor_walks_fields_in_order_and_stops_at_the_end() {
    let mut cursor = FieldCursor::new("1735689600000000,93000.12,x,,true");
    assert_eq!(cursor.integer(), Some(1_735_689_600_000_000));
    assert_eq!(cursor.decimal(), Some(93000.12));
    assert_eq!(cursor.skip(), Some(()));
    assert_eq!(cursor.skip(), Some(()));
    assert_eq!(cursor.boolean(), Some(true));
    assert_eq!(cursor.skip(), None, "no field after the last");
    let mut trailing = FieldCursor::new("1,");
    assert_eq!(trailing.integer(), Some(1));
    assert_eq!(trailing.text(), None, "the empty last field");
    assert_eq!(trailing.skip(), Some(()));
    assert_eq!(trailing.skip(), None);
}

#[test]
fn fields_of_every_length_end_at_their_comma() {
    // Around the word the cursor looks at before searching further.
    for length in 0..20 {
        let field = "x".repeat(length);
        for line in [
            format!("{field},last"),
            format!("{field},,last"),
            field.clone(),
        ] {
            let expected: Vec<&str> = line.split(',').collect();
            let mut cursor = FieldCursor::new(&line);
            let mut read = Vec::new();
            for field in &expected {
                if field.is_empty() {
                    assert_eq!(cursor.skip(), Some(()), "{line:?}");
                    read.push("");
                } else {
                    read.push(cursor.text().expect(&line));
                }
            }
            assert_eq!(read, expected);
            assert_eq!(cursor.skip(), None, "{line:?}: no field after the last");
        }
    }
}

#[test]
fn split_fields_takes_leading_fields() {
    assert_eq!(split_fields::<2>("a,b,c"), Some(["a", "b"]));
    assert_eq!(split_fields::<3>("a,b"), None);
}

#[test]
fn text_datetimes_are_utc_micros() {
    assert_eq!(parse_datetime_us("1970-01-01 00:00:00", 1, "t").unwrap(), 0);
    assert_eq!(
        parse_datetime_us("2024-03-01 00:05:00", 1, "t").unwrap(),
        1_709_251_500_000_000
    );
    assert_eq!(
        parse_datetime_us("2024-02-29T23:59:59.5", 1, "t").unwrap(),
        1_709_251_199_500_000
    );
    assert!(parse_datetime_us("create_time", 1, "t").is_err());
    assert!(parse_datetime_us("2024-13-01 00:00:00", 1, "t").is_err());
}

#[test]
fn bools_in_any_case() {
    assert!(parse_bool("True", 1, "x").unwrap());
    assert!(!parse_bool("false", 1, "x").unwrap());
    assert!(parse_bool("yes", 1, "x").is_err());
}

#[test]
fn decimal_epochs_are_exact() {
    let us = |text: &str, unit| parse_decimal_epoch_us(text, unit, 1, "timestamp").ok();
    for (text, unit, expected) in [
        ("1704067200.1234", EpochUnit::Seconds, 1_704_067_200_123_400),
        ("1704067200", EpochUnit::Seconds, 1_704_067_200_000_000),
        ("1704067200.", EpochUnit::Seconds, 1_704_067_200_000_000),
        (
            "1585180700.064700000",
            EpochUnit::Seconds,
            1_585_180_700_064_700,
        ),
        ("1704067200123.4", EpochUnit::Millis, 1_704_067_200_123_400),
        (
            " 1704067200123456 ",
            EpochUnit::Micros,
            1_704_067_200_123_456,
        ),
        ("-1.5", EpochUnit::Seconds, -1_500_000),
        // Floats get this wrong; the decimal reading does not.
        (
            "1704067200.000001",
            EpochUnit::Seconds,
            1_704_067_200_000_001,
        ),
    ] {
        assert_eq!(us(text, unit), Some(expected), "{text}");
    }
    for bad in [
        "1704067200.0000001",
        "1e9",
        "",
        ".5",
        "12a",
        "1.2.3",
        "99999999999999999999",
    ] {
        assert!(us(bad, EpochUnit::Seconds).is_none(), "{bad}");
    }
}
