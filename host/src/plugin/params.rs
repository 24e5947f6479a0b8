//! Checks a pipeline's plugin params against the JSON Schema the plugin
//! publishes in `info()`, before any work starts.
//!
//! Owns: the subset of JSON Schema that plugin param schemas use (`type`,
//! `enum`, `const`, `required`, `properties`, `additionalProperties`,
//! `items`, `minItems`/`maxItems`, `minimum`/`maximum`,
//! `minLength`/`maxLength`). Keywords outside it (`pattern`, `format`, …)
//! are not checked here; the plugin still checks its params itself when a
//! call opens, so nothing invalid gets through, only later.

use serde_json::Value;

/// Every violation of `schema` by `value`, each as `path: problem` (the
/// path is empty for the top level).
pub fn check(schema: &Value, value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(schema, value, "", &mut problems);
    problems
}

fn walk(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            problems.push(format!("{path}: not allowed"));
        }
        return;
    };
    let mut problem = |message: String| {
        problems.push(if path.is_empty() {
            message
        } else {
            format!("{path}: {message}")
        })
    };
    if let Some(expected) = schema.get("type")
        && !type_matches(expected, value)
    {
        problem(format!(
            "expected {}, found {}",
            type_names(expected),
            describe(value)
        ));
        return;
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        let options: Vec<String> = options.iter().map(Value::to_string).collect();
        problem(format!("{value} is not one of {}", options.join(", ")));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        problem(format!("must be {expected}"));
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            problem(format!("{value} is less than the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            problem(format!("{value} is more than the maximum {max}"));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            problem(format!("shorter than {min} characters"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            problem(format!("longer than {max} characters"));
        }
    }
    if let Some(items) = value.as_array() {
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            problem(format!("needs at least {min} item(s), has {count}"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            problem(format!("allows at most {max} item(s), has {count}"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                walk(item_schema, item, &format!("{path}[{i}]"), problems);
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    problems.push(format!("{}: required but missing", join(path, name)));
                }
            }
        }
        for (name, item) in object {
            let field = join(path, name);
            match properties.and_then(|p| p.get(name)) {
                Some(property) => walk(property, item, &field, problems),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> = properties
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        problems.push(format!(
                            "{field}: unknown parameter (known: {})",
                            known.join(", ")
                        ));
                    }
                    Some(extra @ Value::Object(_)) => walk(extra, item, &field, problems),
                    _ => {}
                },
            }
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn type_matches(expected: &Value, value: &Value) -> bool {
    match expected {
        Value::String(name) => is_type(name, value),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| is_type(name, value)),
        _ => true,
    }
}

fn is_type(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn type_names(expected: &Value) -> String {
    match expected {
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.as_str().unwrap_or("?").to_owned(),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "a table".into(),
    }
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

    #[test]
    fn valid_params_pass() {
        assert!(
            check(
                &schema(),
                &json!({"symbols": ["BTCUSDT"], "interval": "1m", "batch_rows": 5})
            )
            .is_empty()
        );
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let problems = check(
            &schema(),
            &json!({"symbols": ["BTCUSDT", 7], "interval": "2m", "batch_rows": 0, "exclude": "yes", "colour": 1}),
        );
        let text = problems.join("\n");
        assert!(
            text.contains("symbols[1]: expected string, found number 7"),
            "{text}"
        );
        assert!(
            text.contains("interval: \"2m\" is not one of \"1m\", \"1h\""),
            "{text}"
        );
        assert!(
            text.contains("batch_rows: 0 is less than the minimum 1"),
            "{text}"
        );
        assert!(
            text.contains("exclude: expected boolean, found string \"yes\""),
            "{text}"
        );
        assert!(
            text.contains("colour: unknown parameter (known: "),
            "{text}"
        );
        assert_eq!(problems.len(), 5, "{text}");
    }

    #[test]
    fn missing_required_and_empty_arrays() {
        assert_eq!(
            check(&schema(), &json!({})),
            vec!["symbols: required but missing"]
        );
        assert_eq!(
            check(&schema(), &json!({"symbols": []})),
            vec!["symbols: needs at least 1 item(s), has 0"]
        );
    }
}
