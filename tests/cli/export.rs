//! `export weights` and `export table`.

use crate::common::{Dir, TINY};

#[test]
fn export_weights_writes_safetensors_with_reference_names() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    // A run that is not done cannot be exported.
    let err = dir.fails(&["export", "weights", "--run", "lr1e-3-s1"], &spec);
    assert!(err.contains("not done"), "{err}");

    dir.ok(&["run", "--quiet"], &spec);
    dir.ok(&["export", "weights", "--run", "lr1e-3-s1"], &spec);
    let bytes = std::fs::read(dir.results().join("tiny/weights/lr1e-3-s1.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(
        header["backbone.embeddings.word_embeddings.weight"]["shape"],
        serde_json::json!([20, 16])
    );
    assert_eq!(
        header["backbone.layers.1.state_mixer.fc1.weight"]["shape"],
        serde_json::json!([64, 16])
    );
    assert_eq!(header["__metadata__"]["mechlab.run"], "lr1e-3-s1");
    // Every tensor's bytes are in the file: the last offset is the data length.
    let end = header
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v["data_offsets"][1].as_u64())
        .max()
        .unwrap() as usize;
    assert_eq!(bytes.len(), 8 + n + end);
}

#[test]
fn export_table_joins_run_parameters_and_filters() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    dir.ok(&["run", "-q"], &spec);
    let out = dir.path().join("metrics.csv");
    dir.ok(
        &[
            "export",
            "table",
            "--table",
            "metrics",
            "--filter",
            "train.lr=1e-3",
            "--format",
            "csv",
            "--out",
            out.to_str().unwrap(),
        ],
        &spec,
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let lr = header
        .iter()
        .position(|c| *c == "train.lr")
        .expect("joined run columns");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.split(',').nth(lr) == Some("0.001")),
        "{text}"
    );
    // The runs' JSON of every parameter stays in the runs table: every joined row has exactly
    // the header's fields (the join's columns after `train.lr` are where they say).
    assert!(!header.contains(&"config"), "{header:?}");
    assert!(
        rows.iter().all(|r| r.split(',').count() == header.len()),
        "{text}"
    );
    let backend = header.iter().position(|c| *c == "backend").unwrap();
    assert!(
        rows.iter()
            .all(|r| r.split(',').nth(backend) == Some("flex")),
        "{text}"
    );
    // An unknown column is an error that lists the columns.
    let err = dir.fails(
        &["export", "table", "--table", "metrics", "--filter", "lrr=1"],
        &spec,
    );
    assert!(err.contains("no column \"lrr\""), "{err}");
}
