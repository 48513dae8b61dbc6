//! The layer rule, enforced: edges (api, mcp, web, delivery, sync) →
//! commands → store → domain, with no arrow back up and no edge importing
//! another edge's internals. This test reads the crate's own source: a
//! `crate::x` path (or `crate::{x, …}` group) in a code line of a layer
//! that may not see `x` fails it, naming file and line. The HTTP edges
//! also run no SQL of their own: their queries live in `store`.

use std::path::{Path, PathBuf};

/// (layer directory, modules it must not use, why)
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "api",
        &["web"],
        "the REST API calls commands, not the dashboard",
    ),
    (
        "mcp",
        &["web"],
        "MCP tools call commands, not the dashboard",
    ),
    (
        "web",
        &["api"],
        "the dashboard calls commands, not the REST API",
    ),
    (
        "store",
        &["api", "web", "mcp", "delivery", "commands", "sync"],
        "the store executes; it does not call up into commands or edges",
    ),
    (
        "domain",
        &["store", "commands", "api", "web", "mcp", "delivery", "sync"],
        "the domain is pure rules",
    ),
];

/// Known crossings waiting for their owner's change, each with its reason.
/// Keep this list short: an entry is a debt, not a permission.
const KNOWN: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line names through `crate::`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a, b::c, d}`: the first segment of each member at depth 0.
            let mut depth = 0;
            let mut member_start = true;
            let mut ident = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !ident.is_empty() {
                            found.push(std::mem::take(&mut ident));
                        }
                        member_start = true;
                    }
                    c if member_start && (c.is_alphanumeric() || c == '_') => ident.push(c),
                    _ if member_start && !ident.is_empty() => {
                        found.push(std::mem::take(&mut ident));
                        member_start = false;
                    }
                    _ => {}
                }
            }
            if !ident.is_empty() {
                found.push(ident);
            }
        } else {
            let ident: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(ident);
        }
        rest = after;
    }
    found
}

/// Every `file:line: text` that breaks a rule under `src`.
fn violations(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (layer, forbidden, why) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let rel = file
                .strip_prefix(src)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                let known = KNOWN
                    .iter()
                    .any(|(f, path)| *f == rel && code.contains(path));
                if known {
                    continue;
                }
                for module in crate_paths(code) {
                    if forbidden.contains(&module.as_str()) {
                        out.push(format!(
                            "{rel}:{}: uses crate::{module} ({why}): {}",
                            n + 1,
                            code
                        ));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn layers_only_call_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layer rule broken:\n{}", found.join("\n"));
}

/// Edges present; their SQL lives in `store` (one place per query).
#[test]
fn edges_run_no_sql_of_their_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for edge in ["api", "mcp", "web"] {
        let mut files = Vec::new();
        rust_files(&src.join(edge), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                if line.contains("sqlx::query") || line.contains("prepare_cached(") {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL in an edge (move it to store/):\n{}",
        found.join("\n")
    );
}

#[test]
fn known_crossings_still_exist_so_the_list_cannot_rot() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (file, path) in KNOWN {
        let text = std::fs::read_to_string(src.join(file)).unwrap_or_default();
        assert!(
            text.contains(path),
            "{file} no longer uses {path}: drop it from KNOWN"
        );
    }
}

#[test]
fn the_scanner_sees_plain_paths_groups_and_nested_groups() {
    assert_eq!(crate_paths("use crate::web::session;"), vec!["web"]);
    assert_eq!(
        crate_paths("use crate::{api::error::ApiError, store::{self, items}, domain};"),
        vec!["api", "store", "domain"]
    );
    assert_eq!(
        crate_paths("let x = crate::store::now_ms() + crate::api::f();"),
        vec!["store", "api"]
    );
    assert_eq!(
        crate_paths("use crate::{domain, commands::queue};"),
        vec!["domain", "commands"]
    );
    assert!(crate_paths("use super::tx;").is_empty());
}

#[test]
fn a_forbidden_import_is_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("th-layering-{}", std::process::id()));
    let store = dir.join("store");
    std::fs::create_dir_all(&store).expect("temp dir");
    std::fs::write(
        store.join("bad.rs"),
        "//! mentions crate::commands in a comment: fine\nuse crate::{domain, commands::queue};\n",
    )
    .expect("write");
    let found = violations(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("store/bad.rs:2: uses crate::commands"),
        "{found:?}"
    );
}
