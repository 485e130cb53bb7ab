//! `mechlab selftest` and the device choice of `bench`: what is run on a GPU machine, run here
//! on the CPU.

use crate::common::Dir;
use crate::stdout;

fn mechlab(dir: &Dir, args: &[&str]) -> std::process::Output {
    dir.mechlab().args(args).output().unwrap()
}

#[test]
fn selftest_passes_every_check_on_the_cpu_one_json_line_each() {
    let dir = Dir::new();
    let list = stdout(&mechlab(&dir, &["selftest", "--list"]));
    let names: Vec<&str> = list.lines().collect();
    assert!(names.contains(&"fixture:mamba_conv0"), "{list}");
    assert!(
        names.contains(&"scan") && names.contains(&"generic_ops"),
        "{list}"
    );
    assert!(names.contains(&"packed:hyena"), "{list}");

    let out = mechlab(&dir, &["selftest", "--device", "cpu"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), names.len());
    for (line, name) in lines.iter().zip(&names) {
        assert_eq!(line["check"], *name);
        assert_eq!(line["verdict"], "pass", "{line}");
        assert!(line["error"].as_f64().unwrap() <= line["tolerance"].as_f64().unwrap());
    }
}

#[test]
fn selftest_refuses_an_unknown_check_and_a_device_not_built() {
    let dir = Dir::new();
    let out = mechlab(&dir, &["selftest", "--only", "no-such-check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--list"));
    if !cfg!(feature = "wgpu") {
        let out = mechlab(&dir, &["selftest", "--device", "wgpu"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--features wgpu"), "{err}");
    }
    if !cfg!(feature = "cuda") {
        let out = mechlab(&dir, &["bench", "--device", "cuda:1", "--steps", "1"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--features cuda"), "{err}");
    }
}

#[test]
fn bench_reports_the_device_the_warmup_apart_and_no_launch_count_on_the_cpu() {
    let dir = Dir::new();
    let out = mechlab(
        &dir,
        &[
            "bench",
            "--device",
            "cpu",
            "--d-model",
            "16",
            "--steps",
            "2",
            "--warmup",
            "1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["device"], "cpu");
    assert!(line["warmup_s"].as_f64().unwrap() > 0.0, "{line}");
    assert!(line["tokens_per_s"].as_f64().unwrap() > 0.0, "{line}");
    assert!(line["launches_per_step"].is_null(), "{line}");
}
