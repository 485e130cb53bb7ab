//! The JSON Schema of the spec, generated from the documented types in [`super::raw`].
//! Editors validate TOML with it (Taplo / Even Better TOML: `#:schema ../schemas/experiment.schema.json`).

use super::raw::SpecFile;

/// Where the committed schema lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "schemas/experiment.schema.json";

/// The schema as pretty JSON with a trailing newline.
///
/// It describes one *layered file*, not a merged spec: people edit a spec whose `[task]` comes
/// from an include, a fragment without `[experiment]`, a `[task]` that overrides one key. So no
/// key is required (defaults and includes fill them; `mechlab validate` checks the merged spec),
/// and the task variants are alternatives that may overlap (`anyOf`: a partial `[task]` without
/// `kind` can fit several). Unknown keys and wrong types are still errors: every object keeps
/// `additionalProperties: false`.
pub fn experiment_schema() -> String {
    let schema = schemars::schema_for!(SpecFile);
    let mut value = serde_json::to_value(&schema).expect("schema serialises");
    layered(&mut value);
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "description".into(),
            serde_json::Value::String(
                "One mechlab experiment spec file, or an include fragment of one. Every key is \
                 optional here, since sections may come from includes and defaults; `mechlab \
                 validate` checks the merged spec."
                    .into(),
            ),
        );
    }
    let mut text = serde_json::to_string_pretty(&value).expect("schema serialises");
    text.push('\n');
    text
}

/// Drops every `required` list and turns `oneOf` into `anyOf`, recursively.
fn layered(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("required");
            if let Some(variants) = map.remove("oneOf") {
                map.insert("anyOf".into(), variants);
            }
            map.values_mut().for_each(layered);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(layered),
        _ => {}
    }
}
