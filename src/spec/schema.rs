//! The JSON Schema of the spec, generated from the documented types in [`super::raw`].
//! Editors validate TOML with it (Taplo / Even Better TOML: `#:schema ../schemas/experiment.schema.json`).

use super::raw::SpecFile;

/// Where the committed schema lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "schemas/experiment.schema.json";

/// The schema as pretty JSON with a trailing newline.
pub fn experiment_schema() -> String {
    let schema = schemars::schema_for!(SpecFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    text
}
