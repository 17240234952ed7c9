//! Tables for people (aligned, Chinese included) and JSON for scripts.

use clap::ValueEnum;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use tonic_types::StatusExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug)]
pub struct Output {
    format: Format,
}

impl Output {
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints rows under `headers` as a table, or as a JSON array of objects keyed by header.
    pub fn rows(&self, headers: &[&str], rows: Vec<Vec<String>>) {
        match self.format {
            Format::Table => {
                let mut table = Table::new();
                table.load_preset(UTF8_FULL_CONDENSED).set_header(headers.to_vec());
                for row in rows {
                    table.add_row(row);
                }
                println!("{table}");
            }
            Format::Json => {
                let objects: Vec<serde_json::Value> = rows
                    .into_iter()
                    .map(|row| {
                        let map = headers.iter().map(|h| (h.to_string(), serde_json::Value::String(String::new())));
                        let mut object: serde_json::Map<_, _> = map.collect();
                        for (h, v) in headers.iter().zip(row) {
                            object.insert(h.to_string(), serde_json::Value::String(v));
                        }
                        serde_json::Value::Object(object)
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&objects).unwrap_or_default());
            }
        }
    }

    /// Prints one value: a JSON document, or its fields as a two-column table.
    pub fn record(&self, value: &serde_json::Value) {
        match (self.format, value) {
            (Format::Table, serde_json::Value::Object(map)) => {
                let rows = map
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)])
                    .collect();
                self.rows(&["field", "value"], rows);
            }
            _ => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
        }
    }

    /// Prints a nested value: a JSON document, or one row per leaf with a dotted path
    /// (`fees.rate_per_class_hour_fen`); a list of plain values is joined with commas.
    pub fn document(&self, value: &serde_json::Value) {
        match self.format {
            Format::Table => {
                let mut rows = Vec::new();
                flatten("", value, &mut rows);
                self.rows(&["field", "value"], rows);
            }
            Format::Json => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
        }
    }

    /// Reports a failure, with every field violation of a refused request.
    pub fn error(&self, err: &anyhow::Error) {
        let Some(status) = err.downcast_ref::<tonic::Status>() else {
            eprintln!("error: {err:#}");
            return;
        };
        eprintln!("error: {:?}: {}", status.code(), status.message());
        let details = status.get_error_details();
        if let Some(bad) = details.bad_request() {
            for v in &bad.field_violations {
                eprintln!("  {}: {}", v.field, v.description);
            }
        }
        if let Some(failure) = details.precondition_failure() {
            for v in &failure.violations {
                eprintln!("  {} {}: {}", v.r#type, v.subject, v.description);
            }
        }
    }
}

/// One `[path, value]` row per leaf of `value`.
fn flatten(path: &str, value: &serde_json::Value, rows: &mut Vec<Vec<String>>) {
    use serde_json::Value;
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::Object(map) => {
            // Plain values first, then each section.
            let (plain, sections): (Vec<_>, Vec<_>) = map.iter().partition(|(_, v)| !v.is_object());
            for (key, v) in plain.into_iter().chain(sections) {
                flatten(&join(key), v, rows);
            }
        }
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            let texts: Vec<String> = items.iter().map(scalar).collect();
            rows.push(vec![path.to_owned(), texts.join(", ")]);
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), v, rows);
            }
        }
        other => rows.push(vec![path.to_owned(), scalar(other)]),
    }
}

fn scalar(value: &serde_json::Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_flattens_to_dotted_rows() {
        let value = serde_json::json!({
            "number": 1,
            "fees": {"rate_per_class_hour_fen": 10000, "fund_sources": ["A", "B"]},
            "notices": [{"title": "t"}],
        });
        let mut rows = Vec::new();
        flatten("", &value, &mut rows);
        assert_eq!(rows.last().map(|r| r[0].as_str()), Some("fees.rate_per_class_hour_fen"));
        rows.sort();
        let expected = [
            ["fees.fund_sources", "A, B"],
            ["fees.rate_per_class_hour_fen", "10000"],
            ["notices[0].title", "t"],
            ["number", "1"],
        ];
        assert_eq!(rows, expected.map(|r| r.map(str::to_owned).to_vec()).to_vec());
    }
}
