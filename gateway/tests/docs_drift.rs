//! The documents cannot drift from the binary: every error code and every
//! flag the code has is documented, and nothing is documented that the code
//! no longer has. When this fails, its message says what to add (or remove)
//! where.
//!
//! Sources of truth: `ErrorCode::ALL` and clap's `Config::command()`.
//! Documents: docs/PROTOCOL.md (§6.2 WS errors, §6.4 close codes, §8 error
//! codes, §9 flags), docs/NATS.md (Flags) and README.md (Configuration).

use clap::CommandFactory;
use eventwire_gateway::Config;
use eventwire_protocol::ErrorCode;
use std::collections::BTreeSet;

fn doc(name: &str) -> String {
    let path = format!("{}/../{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text from the heading that starts with `start` to the next heading
/// of the same or a higher level.
fn section<'a>(text: &'a str, start: &str) -> &'a str {
    let from = text
        .find(&format!("\n{start}"))
        .unwrap_or_else(|| panic!("no heading {start:?}"))
        + 1;
    let level = start.chars().take_while(|c| *c == '#').count();
    let rest = &text[from + start.len()..];
    let mut end = rest.len();
    let mut offset = 0;
    let mut fenced = false;
    for line in rest.split_inclusive('\n') {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !fenced && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            end = offset;
            break;
        }
        offset += line.len();
    }
    &text[from..from + start.len() + end]
}

/// The cells of every table row in `text` (header and separator rows skipped).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| ---"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// Every `` `name` `` in a cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every `--flag` name in a text, without the dashes and without `=value`.
fn flags_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at + 2;
        let before = (i + at).checked_sub(1).map(|j| b[j]);
        let mut end = start;
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'-')
        {
            end += 1;
        }
        if end > start
            && b[start].is_ascii_lowercase()
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-')
        {
            out.insert(text[start..end].trim_end_matches('-').to_owned());
        }
        i = end.max(start);
    }
    out
}

struct Flag {
    long: String,
    env: Option<String>,
    default: String,
    help: String,
}

fn code_flags() -> Vec<Flag> {
    Config::command()
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?.to_owned();
            if long == "help" || long == "version" {
                return None;
            }
            Some(Flag {
                long,
                env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                default: a
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn fail_if(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "the documents and the code disagree:\n\n{}\n",
        problems.join("\n\n")
    );
}

#[test]
fn every_error_code_is_in_protocol_section_8_and_nothing_else_is() {
    let protocol = doc("docs/PROTOCOL.md");
    let table = section(&protocol, "## 8.");
    let documented: BTreeSet<String> = rows(table)
        .iter()
        .filter_map(|r| ticked(&r[0]).into_iter().next())
        .collect();
    let code: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let mut problems = Vec::new();
    for c in ErrorCode::ALL {
        if !documented.contains(c.as_str()) {
            problems.push(format!(
                "ErrorCode::{c:?} (`{}`) is not documented. Add a row to the table under \
                 \"## 8. Error codes\" in docs/PROTOCOL.md:\n  | `{}` | {} | <where it appears: HTTP, WS `error`, SSE `$close`, WS close NNNN> | <when the gateway sends it> |\n\
                 and, if a WebSocket `error` frame can carry it, a row to the table of causes in §6.2.",
                c.as_str(),
                c.as_str(),
                c.http_status()
            ));
        }
    }
    for d in documented.difference(&code) {
        problems.push(format!(
            "docs/PROTOCOL.md §8 documents the error code `{d}`, which ErrorCode::ALL \
             (protocol/src/error.rs) does not have: remove its row (and any mention in \
             §6.2/§6.4), or add the code to ErrorCode and ErrorCode::ALL."
        ));
    }
    fail_if(problems);
}

#[test]
fn codes_sent_on_websockets_are_in_the_websocket_tables() {
    let protocol = doc("docs/PROTOCOL.md");
    let codes = rows(section(&protocol, "## 8."));
    let ws = section(&protocol, "## 6.");
    let errors = section(ws, "### 6.2");
    let causes = &errors[errors
        .find("| Cause | `code` |")
        .expect("the §6.2 table of causes")..];
    let in_causes: BTreeSet<String> = rows(causes)
        .iter()
        .skip(1) // the header row
        .take_while(|r| r.len() == 2)
        .flat_map(|r| ticked(&r[1]))
        .collect();
    let closes: BTreeSet<String> = rows(section(ws, "### 6.4"))
        .iter()
        .flat_map(|r| r.iter().flat_map(|c| ticked(c)).collect::<Vec<_>>())
        .collect();
    let mut problems = Vec::new();
    for row in &codes {
        let Some(code) = ticked(&row[0]).into_iter().next() else {
            continue;
        };
        let appears = row.get(2).map_or("", String::as_str);
        if appears.contains("WS `error`") && !in_causes.contains(&code) {
            problems.push(format!(
                "docs/PROTOCOL.md §8 says `{code}` appears in WS `error` frames, but the table of \
                 causes in §6.2 does not list it: add a row `| <what the client did> | `{code}` |` \
                 there (or drop \"WS `error`\" from its §8 row)."
            ));
        }
        if appears.contains("WS close") && !closes.contains(&code) {
            problems.push(format!(
                "docs/PROTOCOL.md §8 says `{code}` closes WebSockets, but the close-code table \
                 of §6.4 does not list it: add a row `| <close code> | `{code}` | <meaning> | <queued frames> |`."
            ));
        }
    }
    for code in in_causes
        .iter()
        .filter(|c| ErrorCode::ALL.iter().all(|e| e.as_str() != *c))
    {
        problems.push(format!(
            "docs/PROTOCOL.md §6.2 lists `{code}`, which is not an error code: fix or remove it."
        ));
    }
    fail_if(problems);
}

#[test]
fn every_flag_is_in_protocol_section_9_with_its_env_var_and_nothing_else_is() {
    let protocol = doc("docs/PROTOCOL.md");
    let settings = section(&protocol, "## 9.");
    let table = rows(settings);
    let documented: BTreeSet<String> = table
        .iter()
        .filter_map(|r| r.get(2))
        .flat_map(|c| flags_in(c))
        .collect();
    let flags = code_flags();
    let mut problems = Vec::new();
    for f in &flags {
        let env = f.env.as_deref().unwrap_or("");
        let Some(row) = table
            .iter()
            .find(|r| r.get(2).is_some_and(|c| flags_in(c).contains(&f.long)))
        else {
            problems.push(format!(
                "--{} is not documented. Add a row to a table under \"## 9. Limits and \
                 configuration\" in docs/PROTOCOL.md:\n  | <setting> | {} | `--{}` | `{env}` | {} |",
                f.long,
                if f.default.is_empty() { "none".into() } else { format!("`{}`", f.default) },
                f.long,
                f.help.lines().next().unwrap_or_default(),
            ));
            continue;
        };
        if !env.is_empty() && !row.get(3).is_some_and(|c| c.contains(env)) {
            problems.push(format!(
                "docs/PROTOCOL.md §9: the row of --{} must name its environment variable `{env}` \
                 in the \"Env var\" column.",
                f.long
            ));
        }
    }
    let known: BTreeSet<&str> = flags.iter().map(|f| f.long.as_str()).collect();
    for d in documented.iter().filter(|d| !known.contains(d.as_str())) {
        problems.push(format!(
            "docs/PROTOCOL.md §9 documents --{d}, which the gateway does not have \
             (Config::command()): remove the row, or add the flag."
        ));
    }
    fail_if(problems);
}

#[test]
fn nats_flags_are_in_nats_md_and_the_readme_lists_every_flag() {
    let nats = doc("docs/NATS.md");
    let readme = doc("README.md");
    let nats_table: BTreeSet<String> = rows(section(&nats, "## Flags"))
        .iter()
        .filter_map(|r| r.first())
        .flat_map(|c| flags_in(c))
        .collect();
    let readme_table: BTreeSet<String> = rows(section(&readme, "## Configuration"))
        .iter()
        .filter_map(|r| r.first())
        .flat_map(|c| flags_in(c))
        .collect();
    let flags = code_flags();
    let known: BTreeSet<&str> = flags.iter().map(|f| f.long.as_str()).collect();
    let mut problems = Vec::new();
    for f in &flags {
        if f.long.starts_with("nats-") && !nats_table.contains(&f.long) {
            problems.push(format!(
                "--{} is a NATS flag but docs/NATS.md does not list it: add a row to the table \
                 under \"## Flags\":\n  | `--{}` | `{}` | {} | {} |",
                f.long,
                f.long,
                f.env.as_deref().unwrap_or(""),
                if f.default.is_empty() {
                    "none".into()
                } else {
                    format!("`{}`", f.default)
                },
                f.help.lines().next().unwrap_or_default()
            ));
        }
        // The README's table names every flag, except the NATS ones it
        // leaves to docs/NATS.md.
        if !f.long.starts_with("nats-") && !readme_table.contains(&f.long) {
            problems.push(format!(
                "--{} is not in the README's \"## Configuration\" table: add a row\n  | `--{}` | `{}` | <default> | <what it does> |",
                f.long,
                f.long,
                f.env.as_deref().unwrap_or("")
            ));
        }
    }
    for (doc, table) in [
        ("docs/NATS.md (Flags)", &nats_table),
        ("README.md (Configuration)", &readme_table),
    ] {
        for d in table.iter().filter(|d| !known.contains(d.as_str())) {
            problems.push(format!(
                "{doc} documents --{d}, which the gateway does not have: remove it, or add the flag."
            ));
        }
    }
    fail_if(problems);
}

#[test]
fn the_helpers_read_tables_and_flags() {
    assert_eq!(
        flags_in("`--websocket=<bool>`, `--cors-origin` (repeatable), a-b --x"),
        ["cors-origin", "websocket", "x"].map(String::from).into()
    );
    assert!(flags_in("a -- b, x--y").is_empty());
    let t = "# A\n## 1. x\n| a | `b` |\n|---|---|\n| `c` | d |\n```\n## not a heading\n```\n### 1.1\ntext\n## 2. y\n";
    assert_eq!(section(t, "## 1.").lines().count(), 9);
    assert_eq!(rows(section(t, "## 1.")).len(), 2);
    assert_eq!(ticked("`a`, `b` and c"), ["a", "b"]);
}
