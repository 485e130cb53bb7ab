//! Shared helpers for integration tests: each test gets its own temp directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use std::process::Command;

pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Default for Dir {
    fn default() -> Self {
        Self::new()
    }
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn results(&self) -> PathBuf {
        self.path().join("results")
    }

    /// `mechlab` with this directory's results root and no MECHLAB_ spec overrides leaking in.
    pub fn mechlab(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mechlab"));
        cmd.current_dir(self.path())
            .env("MECHLAB_RESULTS", self.results());
        for (k, _) in std::env::vars() {
            // MECHLAB_GENERIC_OPS is no spec override: CI's generic pass reaches the binary through it.
            if k.starts_with("MECHLAB_") && k != "MECHLAB_RESULTS" && k != "MECHLAB_GENERIC_OPS" {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    /// Runs `mechlab ARGS… SPEC`.
    fn output(&self, args: &[&str], spec: &Path) -> std::process::Output {
        self.mechlab()
            .args(args)
            .arg(spec)
            .output()
            .expect("mechlab runs")
    }

    /// Runs `mechlab ARGS… SPEC`, asserts failure and returns its stderr.
    pub fn fails(&self, args: &[&str], spec: &Path) -> String {
        let out = self.output(args, spec);
        assert!(!out.status.success(), "mechlab {args:?} should fail");
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// Runs `mechlab ARGS… SPEC` and asserts success.
    pub fn ok(&self, args: &[&str], spec: &Path) -> std::process::Output {
        let out = self.output(args, spec);
        assert!(
            out.status.success(),
            "mechlab {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// A tiny AR spec that trains in about a second.
pub const TINY: &str = r#"
[experiment]
name = "tiny"
seeds = [1]

[task]
kind = "ar"
num_kv = 16
pairs = 2
train_size = 256
test_size = 64
eval_examples = 32

[model]
d_model = 16

[train]
batch_size = 16
steps = 30
lr = 3e-3
eval_every = 10
checkpoint_every = 10

[sweep.grid]
"train.lr" = [1e-3, 3e-3]
"#;

/// An interchange grid small enough for [`TINY`]: the block input, the key corrupted, three
/// patch roles, 16 examples.
pub const INTERCHANGE_BLOCK: &str = r#"
[[interventions]]
kind = "interchange"
sites = ["block_input"]
corrupt = ["key"]
patch_at = ["key", "value", "query"]
examples = 16
"#;
