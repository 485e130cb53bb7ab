//! Node ids: blake3 of the node kind, its canonical resolved config (JSON with sorted keys), the
//! ids it depends on, and [`crate::CODE_SALT`]. Same inputs ⇒ same id in every process; any
//! change ⇒ a different id.

use serde_json::Value;

/// 16 hex characters (64 bits): collisions are negligible for any store a person will keep.
pub fn node_id(kind: &str, config: &Value, deps: &[String]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [crate::CODE_SALT, kind, &canonical(config)] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    for dep in deps {
        hasher.update(dep.as_bytes());
        hasher.update(&[0]);
    }
    hasher.finalize().to_hex()[..16].to_string()
}

/// JSON with object keys sorted (serde_json's map is ordered by key) and no whitespace.
pub fn canonical(config: &Value) -> String {
    serde_json::to_string(config).expect("JSON values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_is_stable_and_sensitive_to_every_input() {
        let a = json!({"lr": 0.001, "d_model": 64});
        let same_different_order = json!({"d_model": 64, "lr": 0.001});
        let deps = vec!["abc".to_string()];
        let id = node_id("train", &a, &deps);
        assert_eq!(id.len(), 16);
        assert_eq!(id, node_id("train", &same_different_order, &deps));
        assert_ne!(
            id,
            node_id("train", &json!({"lr": 0.002, "d_model": 64}), &deps)
        );
        assert_ne!(id, node_id("dataset", &a, &deps));
        assert_ne!(id, node_id("train", &a, &["abd".to_string()]));
    }
}
