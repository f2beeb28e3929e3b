//! The shape of the source tree: no two files of src/ import each other, directly or through
//! others (issue 14: metrics labels and the HTTP codec are leaves, and a reader can follow a
//! request downwards without going round in circles).
//!
//! A file imports another when it names an item through a path that reaches the other's
//! module: `crate::a::b::Item`, `super::Item`, `self::child::Item`, or `child::Item` for a
//! submodule `child`. A path is resolved to the longest module prefix that is a file, so a
//! re-export through a `mod.rs` counts as an import of that `mod.rs`. Test modules (files
//! under a `tests/` directory of src/, `tests.rs`, `*_tests.rs`, and inline
//! `#[cfg(test)] mod tests { .. }` blocks) are left out: tests may reach anywhere.
//!
//! Any cycle fails the test unless it is listed in `KNOWN_CYCLES` (empty now), which must
//! match exactly: a listed cycle that is broken has to be struck off the list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Import cycles allowed to remain, each the set of files of one strongly connected
/// component: none (issue 14 broke the last ones). Add one only with the reason it cannot be
/// broken.
const KNOWN_CYCLES: &[&[&str]] = &[];

struct Tree {
    /// Module path (`["http", "codec"]`) → file, relative to src/.
    modules: BTreeMap<Vec<String>, String>,
    /// File → its source, test code removed.
    sources: BTreeMap<String, String>,
}

fn is_test_file(rel: &str) -> bool {
    let stem = Path::new(rel).file_stem().unwrap().to_str().unwrap();
    rel.split('/').any(|part| part == "tests") || stem == "tests" || stem.ends_with("_tests")
}

fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// `src` without its `#[cfg(test)] mod NAME { .. }` blocks.
fn strip_inline_tests(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_block = trimmed.starts_with("mod ")
            && trimmed
                .find(['{', ';'])
                .is_some_and(|i| trimmed.as_bytes()[i] == b'{');
        if !is_block {
            rest = after;
            continue;
        }
        let open = after.find('{').unwrap();
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `src` without `//` comments (doc comments name paths that are not imports).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|line| match line.find("//") {
            // Not inside a string literal such as "http://": good enough for src/, whose
            // strings with `//` in them name no module paths after it anyway.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn read_tree(src: &Path) -> Tree {
    let mut stack = vec![src.to_path_buf()];
    let mut files: Vec<PathBuf> = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut tree = Tree {
        modules: BTreeMap::new(),
        sources: BTreeMap::new(),
    };
    for file in files {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if is_test_file(&rel) || rel == "main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        tree.modules.insert(module_path(&rel), rel.clone());
        tree.sources
            .insert(rel, strip_comments(&strip_inline_tests(&text)));
    }
    tree
}

/// The paths a source names: each `a::b::c` run of identifiers, with `{x, y::z}` groups
/// expanded one level (enough for `use` lists).
fn paths(src: &str) -> Vec<Vec<String>> {
    let bytes = src.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let mut segs: Vec<String> = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            segs.push(src[start..j].to_string());
            if src[j..].starts_with("::")
                && src[j + 2..].starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
            {
                j += 2;
            } else {
                break;
            }
        }
        if src[j..].starts_with("::{")
            && let Some(close) = src[j..].find('}')
        {
            for item in src[j + 3..j + close].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                let first = first.split_whitespace().next().unwrap_or("");
                if !first.is_empty() && first != "self" {
                    let mut p = segs.clone();
                    p.push(first.to_string());
                    out.push(p);
                }
            }
        }
        if segs.len() > 1 {
            out.push(segs);
        }
        i = j.max(i + 1);
    }
    out
}

/// The files `rel` imports.
fn imports(tree: &Tree, rel: &str) -> BTreeSet<String> {
    let here = module_path(rel);
    let children: BTreeSet<&str> = tree
        .modules
        .keys()
        .filter(|m| m.len() == here.len() + 1 && m[..here.len()] == here[..])
        .map(|m| m.last().unwrap().as_str())
        .collect();
    let mut out = BTreeSet::new();
    for path in paths(&tree.sources[rel]) {
        let (mut base, rest): (Vec<String>, &[String]) = match path[0].as_str() {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (here.clone(), &path[1..]),
            "super" => {
                let ups = path.iter().take_while(|s| *s == "super").count();
                (
                    here[..here.len().saturating_sub(ups)].to_vec(),
                    &path[ups..],
                )
            }
            first if children.contains(first) => (here.clone(), &path[..]),
            _ => continue,
        };
        let mut found = None;
        for seg in std::iter::once(None).chain(rest.iter().map(Some)) {
            if let Some(seg) = seg {
                base.push(seg.clone());
            }
            if let Some(file) = tree.modules.get(&base) {
                found = Some(file.clone());
            }
        }
        if let Some(file) = found
            && file != rel
        {
            out.insert(file);
        }
    }
    out
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: BTreeSet<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = BTreeSet::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                comp.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.insert(comp);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: BTreeSet::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn graph_of(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let tree = read_tree(src);
    tree.sources
        .keys()
        .map(|rel| (rel.clone(), imports(&tree, rel)))
        .collect()
}

#[test]
fn src_has_no_import_cycles_but_the_known_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    // The reader sees real imports: a few that must be there.
    for (from, to) in [
        ("http/codec.rs", "http/validate.rs"),
        ("http/validate.rs", "http/message.rs"),
        ("frontend/conn.rs", "frontend/shared.rs"),
        ("config/load.rs", "config/schema.rs"),
    ] {
        assert!(
            graph[from].contains(to),
            "{from} should import {to}: {:?}",
            graph[from]
        );
    }
    let found = cycles(&graph);
    let known: BTreeSet<BTreeSet<String>> = KNOWN_CYCLES
        .iter()
        .map(|c| c.iter().map(|f| f.to_string()).collect())
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "import cycles in src/ changed.\nnew (break them): {new:#?}\nno longer cycles as \
         listed (update KNOWN_CYCLES): {gone:#?}"
    );
}

/// The detector finds a cycle through a re-export and a `super::` import, as in the
/// `sys/mod.rs` ↔ `sys/tee.rs` pair it once reported.
#[test]
fn the_detector_sees_a_cycle_through_a_reexport() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("sys")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod sys;\n").unwrap();
    std::fs::write(
        src.join("sys/mod.rs"),
        "mod tee;\npub use tee::fill;\npub struct Pipe;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("sys/tee.rs"),
        "use super::Pipe;\npub fn fill(_: Pipe) {}\n",
    )
    .unwrap();
    std::fs::write(src.join("sys/other.rs"), "// super::Pipe in a comment\n").unwrap();
    let graph = graph_of(src);
    let want: BTreeSet<BTreeSet<String>> = [["sys/mod.rs", "sys/tee.rs"]
        .into_iter()
        .map(String::from)
        .collect()]
    .into_iter()
    .collect();
    assert_eq!(cycles(&graph), want);
    assert!(graph["sys/other.rs"].is_empty());
}

/// ferry forbids unsafe code at its root, a level no module can lift (issue 14); the
/// syscalls that need it live in the ferry-sys crate (sys/), where every unsafe block says
/// why it is sound.
#[test]
fn unsafe_code_is_forbidden_in_ferry_and_explained_in_sys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(
        lib.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]"),
        "src/lib.rs must forbid unsafe code"
    );
    let tree = read_tree(&root.join("src"));
    let with_unsafe: Vec<&String> = tree
        .sources
        .iter()
        .filter(|(_, src)| {
            src.split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "unsafe")
        })
        .map(|(file, _)| file)
        .collect();
    assert!(with_unsafe.is_empty(), "unsafe in src/: {with_unsafe:?}");
    // In sys/, each `unsafe {` block has a SAFETY comment just above it.
    let sys = root.join("sys/src");
    let mut blocks = 0;
    for entry in std::fs::read_dir(&sys).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains("unsafe {") || line.trim_start().starts_with("//") {
                continue;
            }
            blocks += 1;
            let above = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with("//"))
                .any(|l| l.contains("SAFETY:"));
            assert!(
                above,
                "{}:{}: unsafe block without a SAFETY comment above it",
                path.display(),
                i + 1
            );
        }
    }
    assert!(blocks > 0, "sys/ has the unsafe blocks");
}
