//! Commands on a folder of specs: each experiment spec in path order, include fragments
//! skipped, one summary line per spec and one exit code for all.

use crate::common::{Dir, TINY};

use crate::stdout;

/// Two tiny experiments sharing an include fragment.
fn folder(dir: &Dir) -> std::path::PathBuf {
    let body = TINY.replace("[experiment]\nname = \"tiny\"\nseeds = [1]\n", "");
    dir.write("specs/common.toml", &body);
    for name in ["one", "two"] {
        dir.write(
            &format!("specs/{name}.toml"),
            &format!(
                "include = [\"common.toml\"]\n\n[experiment]\nname = \"{name}\"\nseeds = [1]\n\n\
                 [sweep.grid]\n\"train.lr\" = [3e-3]\n"
            ),
        );
    }
    dir.path().join("specs")
}

#[test]
fn validate_plan_run_and_status_take_a_folder() {
    let dir = Dir::new();
    let specs = folder(&dir);
    let out = stdout(&dir.ok(&["validate"], &specs));
    assert!(
        out.contains("common.toml: skipped (no [experiment]"),
        "{out}"
    );
    assert!(
        out.contains("one.toml: ok: experiment \"one\", 1 runs"),
        "{out}"
    );
    assert!(
        out.contains("two.toml: ok: experiment \"two\", 1 runs"),
        "{out}"
    );
    assert!(
        out.contains("2 ok, 0 failed, 1 skipped (fragments or tables only)"),
        "{out}"
    );
    assert!(
        out.find("one.toml: ok").unwrap() < out.find("two.toml: ok").unwrap(),
        "path order"
    );
    let plan = stdout(&dir.ok(&["plan"], &specs));
    assert!(
        plan.contains("experiment one") && plan.contains("experiment two"),
        "{plan}"
    );

    dir.ok(&["run", "-q"], &specs);
    for name in ["one", "two"] {
        assert!(
            dir.results().join(name).join("runs.parquet").exists(),
            "{name}"
        );
    }
    let status = stdout(&dir.ok(&["status"], &specs));
    assert!(
        status.contains("experiment one: 2 nodes: 2 done"),
        "{status}"
    );
    assert!(
        status.contains("experiment two: 2 nodes: 2 done"),
        "{status}"
    );
}

#[test]
fn a_broken_spec_fails_the_folder_and_the_others_still_run() {
    let dir = Dir::new();
    let specs = folder(&dir);
    dir.write(
        "specs/zz_broken.toml",
        "[experiment]\nname = \"broken\"\n[model]\nd_modle = 3\n",
    );
    let out = dir.mechlab().arg("validate").arg(&specs).output().unwrap();
    assert!(!out.status.success());
    let (text, err) = (stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("one.toml: ok") && text.contains("two.toml: ok"),
        "{text}"
    );
    assert!(text.contains("zz_broken.toml: failed"), "{text}");
    assert!(
        text.contains("2 ok, 1 failed, 1 skipped (fragments or tables only)"),
        "{text}"
    );
    assert!(err.contains("zz_broken.toml:4:1: model.d_modle"), "{err}");
}
