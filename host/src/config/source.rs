//! Where configuration values come from: the TOML file, then `CRYPTOLAKE_…`
//! environment variables on top, layered with figment.
//!
//! Owns: reading the file, the environment-variable naming scheme, and
//! pointing each problem at its line in the file. It must not give values
//! meaning; [`super::plan`] does.
//!
//! Environment variables name a field by its path with `__` between levels:
//! `CRYPTOLAKE_LAKE__URL=s3://bucket/prefix`,
//! `CRYPTOLAKE_RUNTIME__SHUTDOWN_GRACE=10s`,
//! `CRYPTOLAKE_PLUGINS__BINANCE__SHA256=…`. Pipelines are an array, so they
//! are named by their `name` (with `-` written `_`):
//! `CRYPTOLAKE_PIPELINES__SPOT_KLINES__CONCURRENCY=8`. Values are TOML
//! (`8`, `true`, `["a", "b"]`), or a plain string when they do not parse as
//! TOML. Variables with a single `_` after the prefix (`CRYPTOLAKE_CONFIG`)
//! belong to the command line, not to the file.

use std::path::Path;

use figment::Figment;
use figment::providers::Serialized;

use super::types::ConfigFile;
use super::{ConfigError, Problem};

const PREFIX: &str = "CRYPTOLAKE_";

/// Reads `path`, applies the process environment, and parses the result.
pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    read_with_env(path, &vars)
}

/// As [`read`], with the environment given explicitly (for tests).
pub fn read_with_env(path: &Path, vars: &[(String, String)]) -> Result<ConfigFile, ConfigError> {
    let fail = |field: &str, message: String| ConfigError {
        file: path.to_owned(),
        problems: vec![Problem {
            field: field.to_owned(),
            message,
            line: None,
        }],
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail("", format!("cannot read the file: {e}")))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| fail("", syntax_error(&text, &e)))?;
    let mut set_by_env = apply_pipeline_overrides(&mut table, vars)
        .map_err(|(field, message)| fail(&field, message))?;
    let env = vars
        .iter()
        .filter(|(key, _)| !is_pipeline_override(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<Vec<_>>();
    set_by_env.extend(env.iter().filter_map(|(key, _)| {
        let rest = key
            .strip_prefix(PREFIX)
            .filter(|rest| rest.contains("__"))?;
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        Some((field_path(&path), key.clone()))
    }));
    let figment = Figment::from(Serialized::defaults(&table)).merge(env_provider(env));
    figment.extract::<ConfigFile>().map_err(|error| {
        let problems = error
            .into_iter()
            .map(|e| {
                let field = field_path(&e.path);
                let line = line_of(&text, &field);
                let mut message = e.kind.to_string();
                // A value from the environment is fixed there, not in the file.
                if let Some((_, var)) = set_by_env
                    .iter()
                    .find(|(set, _)| field == *set || field.starts_with(&format!("{set}.")))
                {
                    message.push_str(&format!(" (set by the environment variable {var})"));
                }
                Problem {
                    field,
                    message,
                    line,
                }
            })
            .collect();
        ConfigError {
            file: path.to_owned(),
            problems,
        }
    })
}

/// The longest excerpt of the offending line a syntax error quotes: a
/// one-line file of megabytes must not become an error of megabytes.
const EXCERPT_CHARS: usize = 80;

/// A TOML syntax error as its line, column, an excerpt of the line around
/// the column, and what the parser expected.
fn syntax_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return message;
    };
    let start = (0..=span.start.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..start].matches('\n').count() + 1;
    let before: Vec<char> = text[line_start..start].chars().collect();
    let after = text[start..].lines().next().unwrap_or("");
    let column = before.len() + 1;
    let half = EXCERPT_CHARS / 2;
    let lead: String = before[before.len().saturating_sub(half)..].iter().collect();
    let trail: String = after.chars().take(half).collect();
    format!(
        "TOML syntax error at line {line}, column {column}: {message}\n      {}{lead}{trail}{}",
        if before.len() > half { "…" } else { "" },
        if after.chars().count() > half {
            "…"
        } else {
            ""
        },
    )
}

/// `CRYPTOLAKE_A__B=v` as the nested key `a.b`, from an explicit list of
/// variables rather than the process environment, so tests need no global
/// state.
fn env_provider(vars: Vec<(String, String)>) -> impl figment::Provider {
    let mut dict = figment::value::Dict::new();
    for (key, value) in vars {
        let Some(rest) = key.strip_prefix(PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        insert_path(&mut dict, &path, parse_value(&value));
    }
    Serialized::globals(dict)
}

fn insert_path(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    use figment::value::{Dict, Value};
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// A variable's value as TOML when it parses as one, else as a string.
fn toml_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// [`toml_value`] as a figment value.
fn parse_value(text: &str) -> figment::value::Value {
    figment::value::Value::serialize(toml_value(text))
        .unwrap_or_else(|_| figment::value::Value::from(text.to_owned()))
}

fn is_pipeline_override(key: &str) -> bool {
    key.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.to_ascii_uppercase().starts_with("PIPELINES__"))
}

/// Applies `CRYPTOLAKE_PIPELINES__<NAME>__<FIELD…>` to the pipeline named
/// `<name>` (`_` matching `-` too).
/// Returns the field each variable set, with the variable.
fn apply_pipeline_overrides(
    table: &mut toml::Table,
    vars: &[(String, String)],
) -> Result<Vec<(String, String)>, (String, String)> {
    let mut applied = Vec::new();
    for (key, value) in vars.iter().filter(|(k, _)| is_pipeline_override(k)) {
        let rest = &key[PREFIX.len() + "PIPELINES__".len()..];
        let mut parts = rest.split("__");
        let (Some(name), Some(first)) = (parts.next(), parts.next()) else {
            return Err((
                String::new(),
                format!(
                    "environment variable {key}: expected CRYPTOLAKE_PIPELINES__<NAME>__<FIELD>"
                ),
            ));
        };
        let wanted = name.to_ascii_lowercase().replace('-', "_");
        let pipelines = table.get_mut("pipelines").and_then(|p| p.as_array_mut());
        let target = pipelines.and_then(|list| {
            list.iter_mut().enumerate().find(|(_, p)| {
                p.get("name")
                    .and_then(|n| n.as_str())
                    .is_some_and(|n| n.to_ascii_lowercase().replace('-', "_") == wanted)
            })
        });
        let Some((index, toml::Value::Table(current))) = target else {
            return Err((
                String::new(),
                format!("environment variable {key}: no pipeline is named `{name}`"),
            ));
        };
        let path: Vec<String> = std::iter::once(first)
            .chain(parts)
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        applied.push((
            format!("pipelines[{index}].{}", field_path(&path)),
            key.clone(),
        ));
        let mut current = current;
        for part in parents {
            let next = current
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            current = match next {
                toml::Value::Table(inner) => inner,
                _ => {
                    return Err((
                        String::new(),
                        format!("environment variable {key}: `{part}` is not a table"),
                    ));
                }
            };
        }
        current.insert(last.clone(), toml_value(value));
    }
    Ok(applied)
}

/// figment's key path as this project writes field paths:
/// `pipelines[0].source.plugin`.
fn field_path(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// The 1-based line in `text` where the field at `field` (as
/// [`field_path`] writes it) is, or its nearest enclosing table.
pub fn line_of(text: &str, field: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut table = Some(root.get_ref());
    let mut array: Option<&toml::de::DeArray> = None;
    for segment in field_segments(field) {
        match segment {
            Segment::Key(key) => {
                let (name, value) = table?.iter().find(|(k, _)| k.get_ref() == key)?;
                span = Some(name.span());
                match value.get_ref() {
                    DeValue::Table(inner) => (table, array) = (Some(inner), None),
                    DeValue::Array(items) => (table, array) = (None, Some(items)),
                    _ => (table, array) = (None, None),
                }
            }
            Segment::Index(index) => {
                let item = array?.get(index)?;
                span = Some(item.span());
                match item.get_ref() {
                    DeValue::Table(inner) => (table, array) = (Some(inner), None),
                    _ => (table, array) = (None, None),
                }
            }
        }
    }
    let start = span?.start;
    Some(text[..start.min(text.len())].matches('\n').count() + 1)
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn field_segments(field: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        for index in indices.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    const CONFIG: &str = r#"
[lake]
url = "./lake"

[[pipelines]]
name = "spot-klines"
table = "ohlcv"
source = { plugin = "binance", params = { symbols = ["BTCUSDT"] } }

[[pipelines]]
name = "futures"
concurrency = 2
source = { plugin = "binance" }
"#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_overrides_nested_fields_and_pipelines_by_name() {
        let file = write(CONFIG);
        let config = read_with_env(
            file.path(),
            &env(&[
                ("CRYPTOLAKE_LAKE__URL", "s3://bucket/prefix"),
                ("CRYPTOLAKE_RUNTIME__SHUTDOWN_GRACE", "5s"),
                ("CRYPTOLAKE_PIPELINES__SPOT_KLINES__CONCURRENCY", "9"),
                (
                    "CRYPTOLAKE_PIPELINES__FUTURES__SCHEDULE__CRON",
                    "15 1 * * *",
                ),
                ("CRYPTOLAKE_CONFIG", "ignored.toml"),
                ("CRYPTOLAKE_LOG_LEVEL", "debug"),
                ("OTHER__THING", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.lake.url, "s3://bucket/prefix");
        assert_eq!(config.runtime.shutdown_grace.as_deref(), Some("5s"));
        assert_eq!(config.pipelines[0].concurrency, 9);
        assert_eq!(config.pipelines[1].concurrency, 2);
        assert_eq!(
            config.pipelines[1]
                .schedule
                .as_ref()
                .and_then(|s| s.cron.as_deref()),
            Some("15 1 * * *")
        );
    }

    #[test]
    fn a_bad_override_names_its_variable() {
        let file = write(CONFIG);
        for (var, field) in [
            (
                "CRYPTOLAKE_PIPELINES__FUTURES__CONCURRENCY",
                "pipelines[1].concurrency",
            ),
            (
                "CRYPTOLAKE_RUNTIME__SHUTDOWN_GRACE",
                "runtime.shutdown_grace",
            ),
        ] {
            let error = read_with_env(file.path(), &env(&[(var, "[1, 2]")])).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains(field)
                    && text.contains(&format!("set by the environment variable {var}")),
                "{text}"
            );
        }
    }

    #[test]
    fn a_syntax_error_in_a_huge_line_quotes_a_bounded_excerpt() {
        let file = write(&format!(
            "[lake]\nurl = \"{}\" junk {}\n",
            "x".repeat(100),
            "y".repeat(5 << 20)
        ));
        let text = read_with_env(file.path(), &[]).unwrap_err().to_string();
        assert!(text.len() < 1000, "{} bytes", text.len());
        assert!(text.contains("line 2, column 110"), "{text}");
        assert!(
            text.contains("…xxxx") && text.contains("xxxx\" junk yyy"),
            "{text}"
        );
    }

    #[test]
    fn an_override_of_an_unknown_pipeline_is_an_error() {
        let file = write(CONFIG);
        let error = read_with_env(
            file.path(),
            &env(&[("CRYPTOLAKE_PIPELINES__NOPE__CONCURRENCY", "1")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("no pipeline is named `NOPE`"));
    }

    #[test]
    fn type_errors_name_the_field_and_the_line() {
        let file = write(&CONFIG.replace("concurrency = 2", "concurrency = \"two\""));
        let error = read_with_env(file.path(), &[]).unwrap_err();
        let problem = &error.problems[0];
        assert_eq!(problem.field, "pipelines[1].concurrency");
        assert_eq!(problem.line, Some(12));
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_line() {
        let file = write(&CONFIG.replace("table = \"ohlcv\"", "tabel = \"ohlcv\""));
        let error = read_with_env(file.path(), &[]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("tabel"), "{text}");
        assert!(text.contains("pipelines[0]"), "{text}");
        assert_eq!(error.problems[0].line, Some(7), "{text}");
    }

    #[test]
    fn lines_of_nested_fields() {
        assert_eq!(line_of(CONFIG, "lake.url"), Some(3));
        assert_eq!(line_of(CONFIG, "pipelines[1].name"), Some(11));
        assert_eq!(line_of(CONFIG, "pipelines[0].source.plugin"), Some(8));
        assert_eq!(line_of(CONFIG, "pipelines[5]"), None);
    }
}
