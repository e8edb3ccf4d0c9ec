//! The layering of `src/`, checked: each module imports only from the layers below its own (or from
//! itself), no two modules import each other in a loop, nothing but `main` and `lib` imports `cli`,
//! and `unsafe` appears only in `sys` and `net/mmsg`. The layers are the ones `src/lib.rs` describes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Bottom to top; a module may use modules of a lower layer, and others of its own layer as long as
/// no loop forms.
const LAYERS: &[&[&str]] = &[
    &["error", "proto", "framing", "upper", "text", "json", "plot", "throttle", "stdin", "sys"],
    &["net"],
    &["config"],
    &["event_loop"],
    &["report"],
    &["server", "client"],
    &["compare", "bench", "lab"],
    &["cli"],
    &["lib", "main"],
];

/// Where `unsafe` may appear.
const UNSAFE_ALLOWED: &[&str] = &["src/sys.rs", "src/net/mmsg.rs"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/net/stream.rs` is `net`, `src/lib.rs` is `lib`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("a file under src");
    let first = rel.components().next().expect("a path component").as_os_str().to_string_lossy().into_owned();
    first.strip_suffix(".rs").map(str::to_string).unwrap_or(first)
}

/// The code of a file without its comments (a doc comment may name a module without importing it).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names: `crate::x` (or `netpair::x` from the binary).
fn imports(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        rest = &rest[at + prefix.len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let text = code(&fs::read_to_string(file).expect("a readable source file"));
        let module = module_of(&src, file);
        let mut used = imports(&text, "crate::");
        if module == "main" {
            used.extend(imports(&text, "netpair::"));
        }
        used.remove(&module);
        graph.entry(module).or_default().extend(used);
    }
    // A name that is no module of its own (`netpair::run`) is an item of the crate root.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for used in graph.values_mut() {
        let items: Vec<String> = used.iter().filter(|name| !modules.contains(*name)).cloned().collect();
        for item in items {
            used.remove(&item);
            used.insert("lib".to_string());
        }
    }
    graph
}

#[test]
fn every_import_goes_down_a_layer() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (module, used) in &graph {
        let Some(own) = layer_of(module) else {
            wrong.push(format!("src/{module}: not in any layer of tests/layers.rs (add it where it belongs)"));
            continue;
        };
        for other in used {
            match layer_of(other) {
                Some(theirs) if theirs <= own => {}
                Some(theirs) => wrong.push(format!("{module} (layer {own}) uses {other} (layer {theirs}): upwards")),
                None => wrong.push(format!("{module} uses {other}, which is in no layer")),
            }
            if other == "cli" && !["lib", "main"].contains(&module.as_str()) {
                wrong.push(format!("{module} uses cli: only main and lib may"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn no_modules_import_each_other_in_a_loop() {
    let graph = graph();
    // Depth-first search for a back edge, reporting the loop it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        loops: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            loops.push(format!("{} -> {node}", path[at..].join(" -> ")));
            return;
        }
        if !done.insert(node.to_string()) {
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, loops);
        }
        path.pop();
    }
    let (mut done, mut loops) = (BTreeSet::new(), Vec::new());
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done, &mut loops);
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

#[test]
fn unsafe_lives_in_two_modules_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|file| {
            let rel = file.strip_prefix(root).expect("under the root").to_string_lossy().into_owned();
            !UNSAFE_ALLOWED.contains(&rel.as_str())
                && code(&fs::read_to_string(file).expect("readable"))
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|w| w == "unsafe")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "unsafe outside {UNSAFE_ALLOWED:?}: {offenders:?}");
}

#[test]
fn the_checker_sees_what_it_should() {
    // The checks above pass on nothing if the parsing is wrong: make sure it reads a real import.
    let code =
        code("use crate::net::{Event, Transport};\n// crate::cli in a comment\nlet x = crate::text::count(1, \"a\");");
    assert_eq!(imports(&code, "crate::"), BTreeSet::from(["net".to_string(), "text".to_string()]));
    let graph = graph();
    assert!(graph["server"].contains("net"), "server uses net: {:?}", graph["server"]);
    assert!(graph["main"].contains("cli"), "main uses cli: {:?}", graph["main"]);
}
