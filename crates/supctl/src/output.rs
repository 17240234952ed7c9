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

    /// Reports a failure, with every field violation of a refused request.
    pub fn error(&self, err: &anyhow::Error) {
        let Some(status) = err.downcast_ref::<tonic::Status>() else {
            eprintln!("error: {err:#}");
            return;
        };
        eprintln!("error: {:?}: {}", status.code(), status.message());
        if let Some(bad) = status.get_error_details().bad_request() {
            for v in &bad.field_violations {
                eprintln!("  {}: {}", v.field, v.description);
            }
        }
    }
}
