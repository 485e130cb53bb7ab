//! `validate`, `plan` and `schema`: what a spec expands to, before anything runs.

use crate::common::{Dir, TINY};
use crate::stdout;

#[test]
fn validate_and_plan_show_the_expanded_graph() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    let out = dir.ok(&["validate"], &spec);
    assert!(
        stdout(&out).contains("2 runs (1 dataset, 2 train and 0 evaluate nodes)"),
        "{}",
        stdout(&out)
    );

    let out = dir.ok(&["plan"], &spec);
    let text = stdout(&out);
    assert!(text.contains("dataset nodes:    1 (0 done)"), "{text}");
    assert!(text.contains("train nodes:    2 (0 done)"), "{text}");
    assert!(text.contains("lr1e-3-s1"), "{text}");
    assert!(text.contains("lr3e-3-s1"), "{text}");
    assert!(text.contains("train.lr"), "{text}");
}

#[test]
fn every_paper_spec_validates_at_full_size_and_with_the_cpu_profile() {
    let dir = Dir::new();
    let paper = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/paper");
    let mut specs: Vec<_> = std::fs::read_dir(&paper)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap();
            // Included bases and the composed tables, not experiments.
            !["common", "ar_base", "pcfg_base", "tables"].contains(&name)
        })
        .collect();
    specs.sort();
    // One spec per configuration folder of the reference.
    assert_eq!(specs.len(), 20, "{specs:?}");
    for spec in &specs {
        let full = stdout(&dir.ok(&["validate"], spec));
        let cpu = stdout(&dir.ok(&["validate", "--profile", "cpu"], spec));
        let runs = |text: &str| -> usize {
            text.split(", ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(
            runs(&cpu) * 5 <= runs(&full),
            "{}: cpu profile {cpu} vs {full}",
            spec.display()
        );
    }
}

#[test]
fn committed_schema_is_up_to_date() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/experiment.schema.json"
    ))
    .expect("schemas/experiment.schema.json exists");
    assert_eq!(
        committed,
        mechlab::spec::schema::experiment_schema(),
        "schema is stale: run `cargo run -- schema` and commit it"
    );
}

/// The committed schema accepts every file we ship, each validated alone as an editor does
/// (fragments, partial sections, includes unmerged), and still refuses typos and wrong types:
/// checked with Python's `jsonschema`, a standard validator. Skipped with the reason where
/// Python or the package is missing, unless `MECHLAB_REQUIRE_SCHEMA_CHECK` is set (CI sets it).
#[test]
fn every_shipped_spec_file_passes_the_schema_on_its_own() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(root).join("tests/schema/check_experiments.py");
    let required = std::env::var_os("MECHLAB_REQUIRE_SCHEMA_CHECK").is_some();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(root)
        .output();
    let missing = |why: String| {
        assert!(!required, "schema check unavailable: {why}");
        eprintln!("skipped: {why} (install python3 and `pip install jsonschema`)");
    };
    match out {
        Err(e) => missing(format!("python3 cannot run: {e}")),
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named") => {
            missing(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
        Ok(out) => assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
