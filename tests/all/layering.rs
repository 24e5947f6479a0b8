//! The host's modules import only from the layers below their own, as
//! docs/architecture.md's module map orders them: a new `use` that reaches
//! upwards (the lake importing the plugin runtime, telemetry importing the
//! pipeline) fails here, naming the file and the import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lowest first. A module may import any module of a lower rank (and its
/// own); modules of one rank do not import each other.
const LAYERS: &[&[&str]] = &[
    &["period", "schedule", "memory", "builtin", "early_sync"],
    &["config"],
    &["wit"],
    &["transfer"],
    &["telemetry"],
    &["storage"],
    &["plugin"],
    &["lake"],
    &["pipeline"],
    &["agent"],
    &["daemon"],
    &["cli"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level modules a file names as `crate::<module>` outside comments.
fn imported_modules(source: &str) -> Vec<String> {
    let mut modules = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !name.is_empty() {
                modules.push(name);
            }
        }
    }
    modules
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under {}",
        files.len(),
        src.display()
    );

    let mut upward: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let own = rank(&module)
            .unwrap_or_else(|| panic!("module `{module}` is not in LAYERS; give it a layer"));
        let source = std::fs::read_to_string(file).unwrap();
        for imported in imported_modules(&source) {
            if imported == module {
                continue;
            }
            let Some(theirs) = rank(&imported) else {
                panic!(
                    "{} imports `crate::{imported}`, which is not in LAYERS",
                    relative.display()
                );
            };
            if theirs >= own {
                upward
                    .entry(relative.display().to_string())
                    .or_default()
                    .push(format!("crate::{imported}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from the same or a higher layer (docs/architecture.md, module map): {upward:#?}"
    );
}
