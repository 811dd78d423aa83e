//! How the management commands print an answer: the API's JSON as it came
//! (`--output json`, the default when stdout is not a terminal, so scripts
//! keep working) or a table for people (`--output table`).

use clap::ValueEnum;
use comfy_table::{presets, ContentArrangement, Table};
use serde_json::{Map, Value};
use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// The columns of a list's table; every field is in `show` and `--output json`.
const LIST_COLUMNS: &[&str] = &["id", "hostname", "status", "ssl.status", "created_at"];

impl Output {
    /// `--output`, else a table on a terminal and JSON otherwise.
    pub fn or_auto(chosen: Option<Output>) -> Output {
        chosen.unwrap_or(if std::io::stdout().is_terminal() { Output::Table } else { Output::Json })
    }

    /// The text to print for an answer's body (empty for a 204).
    pub fn render(self, body: &str) -> String {
        let body = body.trim_end();
        if body.is_empty() {
            return String::new();
        }
        match (self, serde_json::from_str::<Value>(body)) {
            (Output::Table, Ok(value)) => table(&value),
            // Not JSON (never from this API): shown as it came.
            _ => body.to_string(),
        }
    }
}

fn table(value: &Value) -> String {
    match value {
        Value::Object(o) => match (o.get("result"), o.get("result_info")) {
            (Some(Value::Array(items)), Some(info)) => list(items, info),
            _ => fields(o),
        },
        Value::Array(items) => items.iter().map(table).collect::<Vec<_>>().join("\n"),
        other => scalar(other),
    }
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN).set_content_arrangement(ContentArrangement::Disabled);
    t
}

/// One object: a row per field, nested objects' fields as `parent.child`.
fn fields(o: &Map<String, Value>) -> String {
    let mut t = new_table();
    t.set_header(["field", "value"]);
    let mut rows = Vec::new();
    flatten("", o, &mut rows);
    for (k, v) in rows {
        t.add_row([k, v]);
    }
    t.to_string()
}

fn flatten(prefix: &str, o: &Map<String, Value>, rows: &mut Vec<(String, String)>) {
    for (k, v) in o {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) if !inner.is_empty() => flatten(&key, inner, rows),
            v => rows.push((key, cell(v))),
        }
    }
}

/// A list: a row per item, then the page's counts and the next cursor.
fn list(items: &[Value], info: &Value) -> String {
    let mut t = new_table();
    t.set_header(LIST_COLUMNS.iter().copied());
    for item in items {
        t.add_row(LIST_COLUMNS.iter().map(|c| at(item, c).map(cell).unwrap_or_else(|| "-".into())));
    }
    let mut out = t.to_string();
    let count = |k: &str| info.get(k).map(scalar);
    out.push_str(&format!("\n{} shown", count("count").unwrap_or_else(|| items.len().to_string())));
    if let Some(total) = count("total_count") {
        out.push_str(&format!(" of {total}"));
    }
    if let Some(after) = at(info, "cursors.after").and_then(Value::as_str) {
        out.push_str(&format!("; next page: --cursor {after}"));
    }
    out
}

fn at<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

/// A cell: scalars as text, lists one item a line, objects as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join("\n"),
        v => scalar(v),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_answer_as_it_came() {
        let body = r#"{"id":"a1","hostname":"shop.example"}"#;
        assert_eq!(Output::Json.render(&format!("{body}\n")), body);
        assert_eq!(Output::Table.render(""), "");
    }

    #[test]
    fn objects_are_a_row_per_field() {
        let t = Output::Table
            .render(r#"{"id":"a1","status":"pending","ssl":{"status":"initializing"},"errs":["x","y"],"n":null}"#);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("field") && lines[0].contains("value"), "{t}");
        for want in ["| id ", "| a1 ", "| ssl.status ", "| initializing ", "| n ", "| - "] {
            assert!(t.contains(want), "{want:?} in\n{t}");
        }
        // A list's items on their own lines of the one cell.
        assert!(t.lines().any(|l| l.contains("| x ")) && t.lines().any(|l| l.contains("| y ")), "{t}");
    }

    #[test]
    fn lists_are_a_row_per_item() {
        let body = r#"{"result":[{"id":"a1","hostname":"a.example","status":"active","ssl":{"status":"active"},"created_at":"2026-01-01T00:00:00Z"},
                                {"id":"b2","hostname":"b.example","status":"pending"}],
                      "result_info":{"count":2,"total_count":5,"cursors":{"after":"Yg"}}}"#;
        let t = Output::Table.render(body);
        let rows: Vec<&str> = t.lines().filter(|l| l.contains(".example")).collect();
        assert_eq!(rows.len(), 2, "{t}");
        assert!(rows[0].contains("a1") && rows[0].contains("2026-01-01T00:00:00Z"), "{t}");
        assert!(rows[1].contains("b2") && rows[1].contains("| - "), "{t}");
        assert!(t.ends_with("2 shown of 5; next page: --cursor Yg"), "{t}");
    }
}
