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
            // Included bases, not experiments.
            !["common", "ar_base", "pcfg_base"].contains(&name)
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
