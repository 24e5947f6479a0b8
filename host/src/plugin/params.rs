//! Checks a pipeline's plugin params against the JSON Schema the plugin
//! publishes in `info()`, before any work starts.
//!
//! Owns: compiling a plugin's schema with the `jsonschema` crate (the
//! draft its `$schema` names, 2020-12 when it names none; every keyword,
//! `pattern`, `$ref` within the schema, `anyOf`/`oneOf`, `format` included)
//! with remote references refused, and turning violations into messages
//! that name the parameter by its path (`symbols[1]: …`). It must not read
//! files or the network: a schema that refers outside itself is an error.

use serde_json::Value;

/// Refuses every reference outside the schema: plugins are untrusted, and a
/// check must not reach a network or a file system.
struct NoRemoteReferences;

impl jsonschema::Retrieve for NoRemoteReferences {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!(
            "the schema refers to {uri}, outside itself; only references within it are followed"
        )
        .into())
    }
}

/// A plugin's params schema, compiled.
pub struct ParamsSchema(jsonschema::Validator);

impl ParamsSchema {
    /// Compiles `schema`; an error says what is wrong with it.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::options()
            .with_draft(draft_of(schema))
            .should_validate_formats(true)
            .with_retriever(NoRemoteReferences)
            .build(schema)
            .map(Self)
            .map_err(|error| format!("its params schema is not valid JSON Schema: {error}"))
    }

    /// Every violation of the schema by `value`, each as `path: problem`
    /// (no path for the top level).
    pub fn check(&self, value: &Value) -> Vec<String> {
        use jsonschema::error::ValidationErrorKind;
        let mut problems = Vec::new();
        for error in self.0.iter_errors(value) {
            let path = readable_path(error.instance_path().as_str());
            let at = |name: &str| {
                if path.is_empty() {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                }
            };
            match error.kind() {
                // Named by the parameter itself, as the other problems are.
                ValidationErrorKind::AdditionalProperties { unexpected } => problems.extend(
                    unexpected
                        .iter()
                        .map(|name| format!("{}: unknown parameter", at(name))),
                ),
                ValidationErrorKind::Required { property } => {
                    let name = property
                        .as_str()
                        .map_or_else(|| property.to_string(), str::to_owned);
                    problems.push(format!("{}: required but missing", at(&name)));
                }
                _ if path.is_empty() => problems.push(error.to_string()),
                _ => problems.push(format!("{path}: {error}")),
            }
        }
        problems
    }
}

/// The draft `$schema` names; 2020-12 when it names none (or one this
/// crate does not know).
fn draft_of(schema: &Value) -> jsonschema::Draft {
    use jsonschema::Draft;
    match schema.get("$schema").and_then(Value::as_str) {
        Some(uri) if uri.contains("draft-04") => Draft::Draft4,
        Some(uri) if uri.contains("draft-06") => Draft::Draft6,
        Some(uri) if uri.contains("draft-07") => Draft::Draft7,
        Some(uri) if uri.contains("2019-09") => Draft::Draft201909,
        _ => Draft::Draft202012,
    }
}

/// A JSON Pointer (`/symbols/1`) as a parameter path (`symbols[1]`).
fn readable_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty() {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
    }
    path
}

/// Every violation of `schema` by `value` ([`ParamsSchema::check`]), or
/// why `schema` cannot be compiled.
pub fn check(schema: &Value, value: &Value) -> Result<Vec<String>, String> {
    Ok(ParamsSchema::compile(schema)?.check(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["symbols"],
            "properties": {
                "symbols": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "interval": {"enum": ["1m", "1h"]},
                "batch_rows": {"type": "integer", "minimum": 1, "maximum": 100},
                "exclude": {"type": "boolean"}
            }
        })
    }

    fn problems(schema: &Value, value: Value) -> String {
        check(schema, &value)
            .expect("the schema compiles")
            .join("\n")
    }

    #[test]
    fn valid_params_pass() {
        assert_eq!(
            problems(
                &schema(),
                json!({"symbols": ["BTCUSDT"], "interval": "1m", "batch_rows": 5})
            ),
            ""
        );
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let text = problems(
            &schema(),
            json!({"symbols": ["BTCUSDT", 7], "interval": "2m", "batch_rows": 0, "exclude": "yes", "colour": 1}),
        );
        for expected in [
            "symbols[1]: 7 is not of type \"string\"",
            "interval: \"2m\" is not one of",
            "batch_rows: 0 is less than the minimum of 1",
            "exclude: \"yes\" is not of type \"boolean\"",
            "colour: unknown parameter",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
        assert_eq!(text.lines().count(), 5, "{text}");
    }

    #[test]
    fn missing_required_and_empty_arrays() {
        assert_eq!(
            problems(&schema(), json!({})),
            "symbols: required but missing"
        );
        assert!(
            problems(&schema(), json!({"symbols": []}))
                .starts_with("symbols: [] has less than 1 item")
        );
    }

    /// What schemars generates: `$ref` to `$defs`, `oneOf` for enums with
    /// data, `pattern`, `format`.
    #[test]
    fn pattern_references_and_one_of_are_checked_as_the_schema_says() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "symbol": {"$ref": "#/$defs/Symbol"},
                "window": {"oneOf": [
                    {"type": "object", "properties": {"days": {"type": "integer", "minimum": 1}}, "required": ["days"], "additionalProperties": false},
                    {"type": "object", "properties": {"since": {"type": "string", "format": "date"}}, "required": ["since"], "additionalProperties": false}
                ]}
            },
            "$defs": {"Symbol": {"type": "string", "pattern": "^[A-Z0-9]{5,20}$"}}
        });
        assert_eq!(
            problems(&schema, json!({"symbol": "BTCUSDT", "window": {"days": 3}})),
            ""
        );
        assert_eq!(
            problems(&schema, json!({"window": {"since": "2024-01-01"}})),
            ""
        );
        let text = problems(&schema, json!({"symbol": "btc-usdt"}));
        assert!(
            text.starts_with("symbol: \"btc-usdt\" does not match"),
            "{text}"
        );
        let text = problems(
            &schema,
            json!({"window": {"days": 3, "since": "2024-01-01"}}),
        );
        assert!(text.starts_with("window: "), "{text}");
        let text = problems(&schema, json!({"window": {"since": "yesterday"}}));
        assert!(text.starts_with("window: "), "{text}");
    }

    #[test]
    fn a_schema_that_refers_outside_itself_or_is_invalid_is_refused() {
        let remote = json!({"$ref": "https://example.com/params.json"});
        let error = check(&remote, &json!({})).expect_err("remote reference");
        assert!(error.contains("outside itself"), "{error}");
        let file = json!({"properties": {"a": {"$ref": "file:///etc/passwd"}}});
        assert!(check(&file, &json!({"a": 1})).is_err());
        let invalid = json!({"type": "no-such-type"});
        assert!(check(&invalid, &json!({})).is_err());
    }

    #[test]
    fn pointers_read_as_parameter_paths() {
        assert_eq!(readable_path(""), "");
        assert_eq!(readable_path("/symbols/1"), "symbols[1]");
        assert_eq!(readable_path("/a/b~1c/0/d"), "a.b/c[0].d");
    }
}
