//! Every class of spec error names the file, the line, the key path and what was expected.

mod common;

use common::{Dir, TINY};

/// `spec.toml:LINE:COL` of the first `needle` in `text` that starts a word (`every =` is not
/// found in `eval_every =`): computed from the spec text rather than written down, so editing
/// the shared spec moves every expectation with it.
fn at(text: &str, needle: &str) -> String {
    let word_start = |i: usize| {
        text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    };
    let i = text
        .match_indices(needle)
        .map(|(i, _)| i)
        .find(|&i| word_start(i))
        .unwrap_or_else(|| panic!("{needle:?} is not in the spec"));
    let line = text[..i].matches('\n').count() + 1;
    let col = i - text[..i].rfind('\n').map_or(0, |n| n + 1) + 1;
    format!("spec.toml:{line}:{col}")
}

/// Runs `mechlab validate` on `text` and returns its stderr, asserting failure.
fn errors_of(text: &str, extra: &[&str]) -> String {
    let dir = Dir::new();
    let spec = dir.write("spec.toml", text);
    let args: Vec<&str> = std::iter::once("validate")
        .chain(extra.iter().copied())
        .collect();
    dir.fails(&args, &spec)
}

#[test]
fn unknown_key_names_file_line_key_and_suggestion() {
    let text = TINY.replace("d_model = 16", "d_model = 16\nmixr = \"attention\"");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: model.mixr: unknown key \"mixr\"",
            at(&text, "mixr =")
        )),
        "{err}"
    );
    assert!(err.contains("did you mean \"mixer\"?"), "{err}");
}

#[test]
fn unknown_mixer_lists_valid_values_and_suggests() {
    let text = TINY.replace("d_model = 16", "d_model = 16\nmixer = \"mamaba\"");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: model.mixer: unknown value \"mamaba\"",
            at(&text, "mixer =")
        )),
        "{err}"
    );
    assert!(
        err.contains("valid: attention, based, base_conv, h3, hyena, mamba"),
        "{err}"
    );
    assert!(err.contains("did you mean \"mamba\"?"), "{err}");
}

#[test]
fn wrong_type_says_expected_and_found() {
    let text = TINY.replace("d_model = 16", "d_model = \"wide\"");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: model.d_model: expected usize, found string \"wide\"",
            at(&text, "d_model =")
        )),
        "{err}"
    );
}

#[test]
fn out_of_range_values_are_all_reported_together() {
    let text = TINY
        .replace("pairs = 2", "pairs = 9\nprohibit = 1.5")
        .replace("d_model = 16", "d_model = 0");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: task.pairs: expected 1 to 8 pairs",
            at(&text, "pairs =")
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}: model.d_model: expected a width from 1 to 16384, found 0",
            at(&text, "d_model =")
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}: task.prohibit: expected a share of pairs from 0.01 to 0.99, found 1.5",
            at(&text, "prohibit =")
        )),
        "{err}"
    );
    assert!(err.contains("(3 errors in this spec)"), "{err}");
}

#[test]
fn bad_sweep_axis_points_at_the_sweep_line() {
    let text = TINY.replace(
        "\"train.lr\" = [1e-3, 3e-3]",
        "\"train.lrr\" = [1e-3, 3e-3]",
    );
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: train.lrr: unknown key \"lrr\"",
            at(&text, "\"train.lrr\"")
        )),
        "{err}"
    );
    assert!(err.contains("did you mean \"lr\"?"), "{err}");
}

#[test]
fn bad_value_inside_a_sweep_points_at_the_sweep_line() {
    let text = TINY.replace(
        "\"train.lr\" = [1e-3, 3e-3]",
        "\"model.mixer\" = [\"attention\", \"transformer\"]",
    );
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: model.mixer: unknown value \"transformer\"",
            at(&text, "\"model.mixer\"")
        )),
        "{err}"
    );
}

#[test]
fn conv_kernel_errors_name_the_key_and_what_is_accepted() {
    // A type error: neither taps nor "long".
    let text = TINY.replace(
        "d_model = 16",
        "d_model = 16\nmixer = \"based\"\nconv_kernel = \"short\"",
    );
    let err = errors_of(&text, &[]);
    assert!(err.contains("model.conv_kernel"), "{err}");
    assert!(err.contains("\"long\""), "{err}");
    // A valid value for the wrong mixer.
    let text = TINY.replace("d_model = 16", "d_model = 16\nconv_kernel = 3");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains("model.conv_kernel: attention has no configurable convolution"),
        "{err}"
    );
    // Mamba's convolution cannot be long.
    let text = TINY.replace(
        "d_model = 16",
        "d_model = 16\nmixer = \"mamba\"\nconv_kernel = \"long\"",
    );
    let err = errors_of(&text, &[]);
    assert!(err.contains("mamba's convolution is short"), "{err}");
    // A per-layer list must cover every layer.
    let text = TINY.replace(
        "d_model = 16",
        "d_model = 16\nmixer = \"base_conv\"\nconv_kernel = [3]",
    );
    let err = errors_of(&text, &[]);
    assert!(
        err.contains("expected one kernel per layer (2 layers)"),
        "{err}"
    );
}

#[test]
fn set_override_errors_name_the_flag() {
    let err = errors_of(TINY, &["--set", "train.lr=-1"]);
    assert!(
        err.contains("--set train.lr=-1: train.lr: expected a learning rate in (0, 10), found -1"),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let err = errors_of("[experiment]\nname = \"x\n", &[]);
    assert!(err.contains("spec.toml:2:"), "{err}");
    assert!(err.contains("invalid TOML"), "{err}");
}

#[test]
fn missing_section_and_unknown_profile_are_reported() {
    let err = errors_of("[experiment]\nname = \"x\"\n", &[]);
    assert!(
        err.contains("task: missing required section [task]"),
        "{err}"
    );
    let err = errors_of(TINY, &["--profile", "quik"]);
    assert!(err.contains("--profile quik: no such profile"), "{err}");
}

#[test]
fn intervention_sites_and_layers_are_checked_against_the_model() {
    let text = format!(
        "{TINY}\n[[interventions]]\nkind = \"interchange\"\nsites = [\"mlp_input\"]\nlayers = [2]\n"
    );
    let err = errors_of(&text, &["--set", "model.mlp=false"]);
    assert!(
        err.contains(&format!(
            "{}: interventions.0.sites: site mlp_input does not exist",
            at(&text, "sites =")
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}: interventions.0.layers: layer 2 does not exist",
            at(&text, "layers =")
        )),
        "{err}"
    );
}

#[test]
fn mixer_internal_sites_exist_only_in_their_mixers() {
    let text = format!(
        "{TINY}\n[[interventions]]\nkind = \"ablation\"\nmode = \"zero\"\nsites = [\"conv_output\"]\n"
    );
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(
            &format!("{}: interventions.0.sites: site conv_output does not exist: only mamba and mamba2 have a conv_output site; this model's mixer is attention", at(&text, "sites ="))
        ),
        "{err}"
    );
    assert!(
        err.contains("valid here: block_input, mixer_input, mixer_output, mlp_input, mlp_output, block_output, attn_pattern"),
        "{err}"
    );
    let err = errors_of(
        &text.replace("conv_output", "attn_pattern"),
        &["--set", "model.mixer=mamba"],
    );
    assert!(
        err.contains("site attn_pattern does not exist: only softmax attention has an attention pattern; this model's mixer is mamba"),
        "{err}"
    );
    assert!(
        err.contains(
            "valid here: block_input, mixer_input, mixer_output, block_output, conv_output"
        ),
        "{err}"
    );
}

#[test]
fn interventions_during_training_need_kept_weights() {
    let text = format!("{TINY}\n[[interventions]]\nkind = \"interchange\"\nevery = 15\n");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: interventions.0.every: every = 15 needs intermediate weights",
            at(&text, "every =")
        )),
        "{err}"
    );
    assert!(
        err.contains("set train.keep_weights_every to a divisor of 15"),
        "{err}"
    );
}

#[test]
fn task_errors_name_the_key_inside_the_task_table() {
    let text = TINY.replace("num_kv = 16", "num_kv = \"many\"");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: task.num_kv: expected usize, found string \"many\"",
            at(&text, "num_kv =")
        )),
        "{err}"
    );
    let text = TINY.replace("kind = \"ar\"", "kind = \"mqra\"");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: task.kind: unknown value \"mqra\"",
            at(&text, "kind =")
        )),
        "{err}"
    );
    assert!(err.contains("valid: ar, atr, mqar"), "{err}");
    // An ATR key with the AR task's fields still names the key and line.
    let text = TINY.replace("kind = \"ar\"", "kind = \"atr\"");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: task.num_kv: unknown key \"num_kv\"",
            at(&text, "num_kv =")
        )),
        "{err}"
    );
}

#[test]
fn intervention_errors_name_the_key_inside_the_block() {
    let text =
        format!("{TINY}\n[[interventions]]\nkind = \"interchange\"\nsites = [\"mlp_inptu\"]\n");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: interventions.0.sites.0: unknown value \"mlp_inptu\"",
            at(&text, "\"mlp_inptu\"")
        )),
        "{err}"
    );
    assert!(err.contains("did you mean \"mlp_input\"?"), "{err}");
    let text = format!("{TINY}\n[[interventions]]\nkind = \"interchang\"\n");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: interventions.0.kind: unknown value \"interchang\"",
            at(&text, "kind = \"interchang\"")
        )),
        "{err}"
    );
}

#[test]
fn reference_streams_take_only_what_the_reference_generators_do() {
    let text = TINY.replace("seeds = [1]", "seeds = [4294967296]").replace(
        "pairs = 2",
        "pairs = 2\nrng = \"reference\"\nprohibit = 0.2\nprohibit_split = \"strict\"",
    );
    let err = errors_of(&text, &[]);
    assert!(err.contains("experiment.seeds"), "{err}");
    assert!(err.contains("0 to 4294967295"), "{err}");
    assert!(err.contains("task.prohibit_split"), "{err}");
    assert!(
        err.contains("`strict` needs task.rng = \"chacha\""),
        "{err}"
    );
}

#[test]
fn heads_that_do_not_split_the_mixer_name_the_key_line_and_rule() {
    // GLA's keys are d_model/2 wide: 3 heads do not split 8 channels.
    let text = TINY.replace("d_model = 16", "d_model = 16\nmixer = \"gla\"\nheads = 3");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: model.heads: gla splits its keys",
            at(&text, "heads =")
        )),
        "{err}"
    );
    assert!(err.contains("a divisor of d_model/2"), "{err}");
    // 4 heads split 8 key channels (GLA) and 16 (DeltaNet): both accepted.
    for mixer in ["gla", "delta_net"] {
        let text = TINY.replace(
            "d_model = 16",
            &format!("d_model = 16\nmixer = \"{mixer}\"\nheads = 4"),
        );
        let dir = Dir::new();
        let spec = dir.write("spec.toml", &text);
        dir.ok(&["validate"], &spec);
    }
    // Mamba-2's reference heads are 64 channels wide: at d_model 16 (d_inner 32) there is no
    // reference model, and the error says what to set.
    let text = TINY.replace("d_model = 16", "d_model = 16\nmixer = \"mamba2\"");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains("model.heads: mamba2 splits d_inner = 2·d_model = 32 into heads"),
        "{err}"
    );
    assert!(err.contains("set model.heads to a divisor of 32"), "{err}");
    let text = TINY.replace(
        "d_model = 16",
        "d_model = 16\nmixer = \"mamba2\"\nheads = 4\nd_state = 300",
    );
    let err = errors_of(&text, &[]);
    assert!(
        err.contains(&format!(
            "{}: model.d_state: mamba2's d_state is 1 to 256, found 300",
            at(&text, "d_state =")
        )),
        "{err}"
    );
    // Heads mean nothing to Mamba.
    let text = TINY.replace("d_model = 16", "d_model = 16\nmixer = \"mamba\"\nheads = 2");
    let err = errors_of(&text, &[]);
    assert!(
        err.contains("model.heads: mamba has no configurable heads"),
        "{err}"
    );
}

#[test]
fn h3_names_the_key_that_is_wrong() {
    let text = TINY.replace(
        "d_model = 16",
        "d_model = 16\nmixer = \"h3\"\nmax_positions = 1",
    );
    let err = errors_of(&text, &[]);
    assert!(err.contains("model.max_positions"), "{err}");
    assert!(!err.contains("model.d_model"), "{err}");
}

#[test]
fn a_sweep_key_outside_the_run_is_refused_with_a_suggestion() {
    let text = TINY.replace(
        "\"train.lr\" = [1e-3, 3e-3]",
        "\"modle.d_model\" = [16, 32]",
    );
    let err = errors_of(&text, &[]);
    assert!(err.contains("sweep.grid.modle.d_model"), "{err}");
    assert!(
        err.contains("a swept key is `task.…`, `model.…` or `train.…`"),
        "{err}"
    );
    assert!(err.contains("did you mean \"model.d_model\"?"), "{err}");
    let text = TINY.replace("\"train.lr\" = [1e-3, 3e-3]", "\"x.y\" = [\"../..\"]");
    let err = errors_of(&text, &[]);
    assert!(err.contains("`x.y` is not a key of a run"), "{err}");
}

#[test]
fn experiment_names_that_would_clash_or_overflow_are_refused() {
    let err = errors_of(&TINY.replace("name = \"tiny\"", "name = \"store\""), &[]);
    assert!(
        err.contains("experiment.name: \"store\" is reserved"),
        "{err}"
    );
    let long = "x".repeat(300);
    let err = errors_of(
        &TINY.replace("name = \"tiny\"", &format!("name = \"{long}\"")),
        &[],
    );
    assert!(
        err.contains("expected at most 100 characters, found 300"),
        "{err}"
    );
}

#[test]
fn includes_must_be_regular_spec_sized_files() {
    let dir = Dir::new();
    dir.write("sub/placeholder.txt", "");
    dir.write("big.toml", &"# padding\n".repeat(120_000));
    for (target, expected) in [
        ("sub", "is not a regular file"),
        ("/dev/zero", "is not a regular file"),
        ("big.toml", "a spec or include fragment is at most 1048576"),
        ("missing.toml", "does not exist"),
    ] {
        let spec = dir.write("spec.toml", &format!("include = [\"{target}\"]\n{TINY}"));
        let err = dir.fails(&["validate"], &spec);
        assert!(
            err.contains("spec.toml:1:1: include: included file"),
            "{target}: {err}"
        );
        assert!(err.contains(expected), "{target}: {err}");
    }
    // The spec itself, too: no runaway read of a device.
    let err = dir.fails(&["validate"], std::path::Path::new("/dev/zero"));
    assert!(err.contains("is not a regular file"), "{err}");
}

#[test]
fn include_errors_name_the_including_line_and_the_chain() {
    let dir = Dir::new();
    let spec = dir.write("a.toml", &format!("include = [\"b.toml\"]\n{TINY}"));
    dir.write("b.toml", "# a base\n\ninclude = [\"c.toml\"]\n");
    dir.write("c.toml", "include = [\"a.toml\"]\n");
    let err = dir.fails(&["validate"], &spec);
    assert!(
        err.contains("c.toml:1:1: include: include cycle: "),
        "{err}"
    );
    assert!(err.contains("a.toml → "), "{err}");
    assert!(
        err.contains("b.toml:3, included from ") && err.contains("a.toml:1)"),
        "{err}"
    );
    dir.write("c.toml", "\ninclude = \"a.toml\"\n");
    let err = dir.fails(&["validate"], &spec);
    assert!(
        err.contains("c.toml:2:1: include: expected a list of file paths"),
        "{err}"
    );
    // A syntax error inside an included file names its place and the chain that reached it.
    dir.write("c.toml", "[model]\nd_model = = 3\n");
    let err = dir.fails(&["validate"], &spec);
    assert!(err.contains("c.toml:2:"), "{err}");
    assert!(err.contains("invalid TOML"), "{err}");
    assert!(
        err.contains("(this file is included from ")
            && err.contains("b.toml:3, included from ")
            && err.contains("a.toml:1)"),
        "{err}"
    );
    // So do a wrong type and an unknown key written in an included file.
    for fragment in ["[model]\nmlp = \"yes\"\n", "[model]\nwidht = 3\n"] {
        dir.write("c.toml", fragment);
        let err = dir.fails(&["validate"], &spec);
        let at = err
            .lines()
            .find(|l| l.contains("c.toml:2:"))
            .unwrap_or_else(|| panic!("no error at c.toml:2:\n{err}"));
        assert!(
            at.contains("(this file is included from ") && at.contains("a.toml:1)"),
            "{at}"
        );
    }
}

#[test]
fn includes_outside_the_spec_folder_are_named_in_a_warning() {
    let dir = Dir::new();
    dir.write("shared/base.toml", "[model]\nlayers = 2\n");
    let spec = dir.write(
        "specs/a.toml",
        &format!("include = [\"../shared/base.toml\"]\n{TINY}"),
    );
    // It still loads (shared fragments are a real pattern), with the file and the line named.
    let out = dir.ok(&["validate"], &spec);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("base.toml: included from ")
            && err.contains("a.toml:1, lies outside the spec's folder"),
        "{err}"
    );
    // Inside the folder tree: no warning.
    dir.write("specs/common/base.toml", "[model]\nlayers = 2\n");
    let spec = dir.write(
        "specs/a.toml",
        &format!("include = [\"common/base.toml\"]\n{TINY}"),
    );
    let out = dir.ok(&["validate"], &spec);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("outside"), "{err}");
    // A file outside that is not a fragment (`/etc/hostname`, say) is refused where it is,
    // with the chain that reached it.
    dir.write("elsewhere/hostname", "build-host-7\n");
    let spec = dir.write(
        "specs/a.toml",
        &format!("include = [\"../elsewhere/hostname\"]\n{TINY}"),
    );
    let err = dir.fails(&["validate"], &spec);
    assert!(err.contains("hostname:1:"), "{err}");
    assert!(
        err.contains("(this file is included from ") && err.contains("a.toml:1)"),
        "{err}"
    );
}

/// Loads `path` in-process with a fixed memory limit (so results do not depend on the machine),
/// turning a panic into a test failure that names the file.
fn load_without_panic(path: &std::path::Path) -> Result<mechlab::spec::Resolved, String> {
    let opts = mechlab::spec::LoadOptions {
        env: false,
        max_memory: Some(16_000_000_000),
        ..Default::default()
    };
    match std::panic::catch_unwind(|| mechlab::spec::load(path, &opts)) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => panic!("{}: loading panicked", path.display()),
    }
}

/// `tests/malformed/`: each file's first line says which key (or text) its error must name.
#[test]
fn every_malformed_spec_is_an_error_naming_its_key_never_a_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "the corpus has {} specs", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
        match load_without_panic(&path) {
            Ok(_) => panic!("{}: accepted", path.display()),
            Err(e) => assert!(e.contains(expect), "{}: {e}", path.display()),
        }
    }
}

/// Random edits of every shipped spec (and the corpus): deleted, duplicated and swapped lines,
/// extreme numbers, wrong types, truncation, stray bytes. Loading must give a spec or an error,
/// never a panic. `MECHLAB_FUZZ_ROUNDS` runs more rounds than CI does.
#[test]
fn mutated_specs_never_panic_the_loader() {
    use rand::{Rng, SeedableRng};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rounds: usize = std::env::var("MECHLAB_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    // A copy of the experiments, so that mutated files keep their relative includes.
    let dir = Dir::new();
    let mut bases = Vec::new();
    for sub in ["experiments", "experiments/paper", "tests/malformed"] {
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let rel = path.strip_prefix(root).unwrap();
                let copy = dir.write(
                    &rel.to_string_lossy(),
                    &std::fs::read_to_string(&path).unwrap(),
                );
                bases.push(copy);
            }
        }
    }
    bases.sort();
    let extremes = [
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "1e308",
        "-1e308",
        "nan",
        "inf",
        "\"x\"",
        "[]",
        "{}",
        "true",
        "0.5",
        "[1, 2]",
        "\"\"",
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2505_15105);
    for _ in 0..rounds {
        for base in &bases {
            let original = std::fs::read_to_string(base).unwrap();
            let mut lines: Vec<String> = original.lines().map(String::from).collect();
            for _ in 0..rng.random_range(1..4) {
                if lines.is_empty() {
                    break;
                }
                let i = rng.random_range(0..lines.len());
                match rng.random_range(0..7) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let line = lines[i].clone();
                        lines.insert(i, line);
                    }
                    2 => {
                        let j = rng.random_range(0..lines.len());
                        lines.swap(i, j);
                    }
                    3 | 4 => {
                        if let Some((key, _)) = lines[i].split_once(" = ") {
                            let value = extremes[rng.random_range(0..extremes.len())];
                            lines[i] = format!("{key} = {value}");
                        }
                    }
                    5 => {
                        let cut =
                            lines[i].floor_char_boundary(rng.random_range(0..=lines[i].len()));
                        lines[i].truncate(cut);
                    }
                    _ => lines.insert(i, "[[interventions]]".into()),
                }
            }
            std::fs::write(base, lines.join("\n")).unwrap();
            let _ = load_without_panic(base);
            std::fs::write(base, &original).unwrap();
        }
    }
}
