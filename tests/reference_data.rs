//! `task.rng = "reference"` reproduces the reference's datasets token for token.
//!
//! `tests/fixtures/reference_data.json` comes from running the reference's own generators
//! (tinylang's `AR` and `PCFG`, seed 42, its `make_languages.py` order) with
//! `tests/reference/make_data_fixtures.py`: an FNV-1a hash of every row of every split, the first
//! rows in full, the grammars, and the random primitives underneath. mechlab regenerates each
//! dataset at full size (100,032 training and 1,024 test sequences for the paper's four) and must
//! match every hash.

mod common;

use mechlab::spec::raw::TaskSpec;
use mechlab::spec::{LoadOptions, load, profiles};
use mechlab::task::Split;
use mechlab::task::pcfg::{GrammarConfig, Symbol};
use mechlab::task::reference::{
    Counts, Splits, ar, atr, numpy::RandomState, pyset, python::PyRandom,
};
use mechlab::task::{
    ArConfig, ArQuery, AtrConfig, AtrQuery, Dataset, Prohibit, ProhibitSplit, Role,
};
use serde_json::Value;

fn fixture() -> &'static Value {
    static F: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/reference_data.json"
        ))
        .expect("fixture");
        serde_json::from_str(&text).expect("fixture JSON")
    })
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Floats stored as their exact bits.
fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| f64::from_bits(x.as_u64().unwrap()))
        .collect()
}

/// FNV-1a over each token's 4 little-endian bytes, 0xFFFFFFFF after each row (as the script).
fn fnv(data: &Dataset) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for i in 0..data.len() {
        let row = &data.example(i)[..data.length(i)];
        for &t in row.iter().chain([&u32::MAX]) {
            for b in t.to_le_bytes() {
                h = (h ^ b as u64).wrapping_mul(0x100000001b3);
            }
        }
    }
    format!("{h:016x}")
}

/// Every split of `splits` against the fixture's; `value_first` for reverse AR, whose reference
/// "query item" is the value.
fn check(name: &str, splits: &Splits, value_first: bool) {
    let expected = &fixture()["datasets"][name]["splits"];
    let mut ours = vec![("train", &splits.train), ("test", &splits.test)];
    if let Some(dev) = &splits.dev {
        ours.push(("dev", dev));
    }
    assert_eq!(
        ours.len(),
        expected.as_object().unwrap().len(),
        "{name}: the same splits"
    );
    for (split, data) in ours {
        let e = &expected[split];
        assert_eq!(
            data.len(),
            e["n"].as_u64().unwrap() as usize,
            "{name} {split}: size"
        );
        for (i, row) in e["head"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                &data.example(i)[..data.length(i)],
                usizes(row)
                    .iter()
                    .map(|&t| t as u32)
                    .collect::<Vec<_>>()
                    .as_slice(),
                "{name} {split}: row {i}"
            );
            let (key, value) = (data.position(i, Role::Key), data.position(i, Role::Value));
            let (q, t) = if value_first {
                (value, key)
            } else {
                (key, value)
            };
            assert_eq!(
                q,
                e["key"][i].as_u64().unwrap() as usize,
                "{name} {split}: query item of row {i}"
            );
            assert_eq!(
                t,
                e["value"][i].as_u64().unwrap() as usize,
                "{name} {split}: target of row {i}"
            );
        }
        assert_eq!(
            fnv(data),
            e["fnv"].as_str().unwrap(),
            "{name} {split}: every row"
        );
    }
}

fn counts(name: &str) -> Counts {
    let d = &fixture()["datasets"][name];
    Counts {
        train: d["train_size"].as_u64().unwrap() as usize,
        test: d["eval_size"].as_u64().unwrap() as usize,
    }
}

fn ar_config(query: ArQuery, prohibit: Option<f64>) -> ArConfig {
    ArConfig {
        num_kv: 8192,
        pairs: 16,
        query,
        prohibit: prohibit.map(|fraction| Prohibit {
            fraction,
            split: ProhibitSplit::Reference,
        }),
    }
}

fn atr_config(grammar: GrammarConfig, query: AtrQuery, prohibit: Option<f64>) -> AtrConfig {
    AtrConfig {
        grammar,
        // mechlab's default cut (every sequence fits 1,024 positions); the reference cuts at
        // 1,024 terminals. Seed 42's streams never reach either, so both give these datasets.
        max_yield: 1019,
        query,
        unambiguous_queries: true,
        sibling_may_be_self: true,
        prohibit,
    }
}

fn atr_case(name: &str, grammar: GrammarConfig, query: AtrQuery, prohibit: Option<f64>) {
    let cfg = atr_config(grammar, query, prohibit);
    let splits = atr::generate(&cfg, 42, counts(name), 1_000_000, None).unwrap();
    check(name, &splits, false);
}

const MEDIUM: GrammarConfig = GrammarConfig {
    max_rhs_len: 10,
    ..GrammarConfig::EASY
};
const EASY_8192: GrammarConfig = GrammarConfig {
    num_terminals: 8192,
    terminal_occurrence_factor: Some(20.0),
    ..GrammarConfig::EASY
};

#[test]
fn numpy_legacy_primitives_match() {
    let p = &fixture()["primitives"];
    let mut rs = RandomState::new(42);
    assert_eq!(
        (0..5).map(|_| rs.random_sample()).collect::<Vec<_>>(),
        f64s(&p["np_random_sample"])
    );
    assert_eq!(
        (0..20).map(|_| rs.randint(1, 11)).collect::<Vec<_>>(),
        usizes(&p["np_randint_1_11"])
    );
    assert_eq!(rs.permutation(10), usizes(&p["np_permutation_10"]));
    assert_eq!(
        rs.choice_distinct(4096, 16),
        usizes(&p["np_choice_4096_16"])
    );
    assert_eq!(rs.dirichlet_ones(5), f64s(&p["np_dirichlet_5"]));
    let cdf = mechlab::task::reference::numpy::Cdf::new(&[0.1, 0.2, 0.3, 0.4]);
    assert_eq!(
        (0..20).map(|_| rs.choice_p(&cdf)).collect::<Vec<_>>(),
        usizes(&p["np_choice_p"])
    );
}

#[test]
fn cpython_random_and_set_order_match() {
    let p = &fixture()["primitives"];
    let mut py = PyRandom::new(42);
    assert_eq!(
        (0..3).map(|_| py.randint(16, 16)).collect::<Vec<_>>(),
        usizes(&p["py_randint_16_16"])
    );
    assert_eq!(
        (0..20).map(|_| py.randbelow(16)).collect::<Vec<_>>(),
        usizes(&p["py_choice_16"])
    );
    for case in p["set_orders"].as_array().unwrap() {
        assert_eq!(
            pyset::set_order(&usizes(&case["in"])),
            usizes(&case["out"]),
            "{case}"
        );
    }
}

#[test]
fn ar_32_seed_42_is_the_papers_dataset() {
    let splits = ar::generate(&ar_config(ArQuery::Key, None), 42, counts("ar_32")).unwrap();
    check("ar_32", &splits, false);
}

#[test]
fn ar_variants_follow_the_reference() {
    let split = ar::generate(
        &ar_config(ArQuery::Key, Some(0.2)),
        42,
        counts("ar_32_split"),
    )
    .unwrap();
    check("ar_32_split", &split, false);
    let value = ar::generate(&ar_config(ArQuery::Value, None), 42, counts("ar_32_value")).unwrap();
    check("ar_32_value", &value, true);
}

#[test]
fn pcfg_easy_seed_42_grammar_and_data_are_the_papers() {
    let cfg = atr_config(GrammarConfig::EASY, AtrQuery::Parent, None);
    let g = atr::grammar(&cfg, 42).unwrap();
    let e = &fixture()["datasets"]["pcfg_easy"]["grammar"];
    assert_eq!(g.max_depths, usizes(&e["max_depths"]));
    let rules: Vec<Vec<Vec<String>>> = g
        .rules
        .iter()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    r.iter()
                        .map(|s| match s {
                            Symbol::Terminal(t) => format!("t{t}"),
                            Symbol::Nonterminal(n) => format!("nt{n}"),
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    assert_eq!(serde_json::to_value(&rules).unwrap(), e["rules"]);
    for (ours, theirs) in g.rule_probs.iter().zip(e["rule_probs"].as_array().unwrap()) {
        assert_eq!(ours, &f64s(theirs));
    }
    let heads: Vec<f64> = g.head_probs.iter().map(|h| h[0]).collect();
    assert_eq!(heads, f64s(&e["head_probs_first"]));
    atr_case("pcfg_easy", GrammarConfig::EASY, AtrQuery::Parent, None);
}

#[test]
fn pcfg_medium_and_easy_8192_seed_42_are_the_papers() {
    atr_case("pcfg_medium", MEDIUM, AtrQuery::Parent, None);
    atr_case("pcfg_easy_8192", EASY_8192, AtrQuery::Parent, None);
}

#[test]
fn atr_variants_follow_the_reference() {
    atr_case("pcfg_gen", GrammarConfig::EASY, AtrQuery::Parent, Some(0.2));
    atr_case("pcfg_sibling", GrammarConfig::EASY, AtrQuery::Sibling, None);
}

/// The same through a spec: `task.rng = "reference"` with the paper's sizes, seed 42, shows the
/// reference's first AR-32 training sequence.
#[test]
fn a_spec_with_reference_streams_gives_the_papers_first_sequence() {
    let dir = common::Dir::new();
    let spec = dir.write(
        "ar.toml",
        r#"
[experiment]
name = "ar_ref"
seeds = [42]

[task]
kind = "ar"
rng = "reference"

[model]
d_model = 16

[train]
steps = 10
"#,
    );
    let out = dir.ok(&["data", "show", "--split", "train", "-n", "1"], &spec);
    let text = String::from_utf8(out.stdout).unwrap();
    let first = usizes(&fixture()["datasets"]["ar_32"]["splits"]["train"]["head"][0]);
    // Decoded: k<i> for token 3 + i, v<j> for token 4099 + j.
    let name = |t: usize| match t {
        1 => "<bos>".to_string(),
        2 => "<eos>".to_string(),
        t if t < 4099 => format!("k{}", t - 3),
        t => format!("v{}", t - 4099),
    };
    // The example's line: its index, then each token, role annotations ("k2[key]") aside.
    let line = text.lines().nth(1).expect("one example");
    let shown: Vec<String> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.split('[').next().unwrap().to_string())
        .collect();
    let expected: Vec<String> = first.iter().map(|&t| name(t)).collect();
    assert_eq!(shown, expected, "{text}");
}

/// What decides a test set ([`TaskSpec::test_set_fields`]) is what the generators use: with the
/// reference's one stream another training size shifts the test sequences; with mechlab's own
/// streams (one per split) it does not.
#[test]
fn test_set_fields_tell_when_a_test_set_changes() {
    let task = |rng: &str, train: usize| -> TaskSpec {
        toml::from_str(&format!(
            "kind = \"ar\"\nrng = \"{rng}\"\ntrain_size = {train}\ntest_size = 50\neval_examples = 20"
        ))
        .unwrap()
    };
    let test_fnv = |t: &TaskSpec| fnv(&t.generate(42, Split::Test, 50).unwrap());
    for rng in ["reference", "chacha"] {
        let (a, b) = (task(rng, 200), task(rng, 300));
        let same_fields = a.test_set_fields() == b.test_set_fields();
        assert_eq!(same_fields, rng == "chacha", "{rng}");
        assert_eq!(test_fnv(&a) == test_fnv(&b), same_fields, "{rng}");
        // The number of examples evaluated is not part of the test set.
        let mut c = a.clone();
        if let TaskSpec::Ar(ar) = &mut c {
            ar.eval_examples = 10;
        }
        assert_eq!(c.test_set_fields(), a.test_set_fields());
    }
}

/// Every shipped spec, under every profile it defines, is evaluated on the spec's own seed-42
/// test set, or its loading warns that the test set differs, naming what changed. The paper's
/// four tasks, under every profile that keeps them, give the reference's test set row for row.
#[test]
fn shipped_profiles_keep_the_papers_test_sets_or_say_so() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let opts = |profile: Option<String>| LoadOptions {
        profile,
        env: false,
        max_memory: Some(u64::MAX),
        ..Default::default()
    };
    // The paper's tasks by the fields that decide their test sets.
    let mut paper = Vec::new();
    for (file, name) in [
        ("paper/ar_32.toml", "ar_32"),
        ("paper/pcfg_easy.toml", "pcfg_easy"),
        ("paper/pcfg_medium.toml", "pcfg_medium"),
        ("paper/pcfg_easy_8192.toml", "pcfg_easy_8192"),
    ] {
        let own = load(&root.join(file), &opts(None)).unwrap();
        paper.push((own.runs[0].task.test_set_fields(), name));
    }
    let mut generated: std::collections::BTreeMap<String, String> = Default::default();
    let (mut profiles_seen, mut pinned) = (0, std::collections::BTreeSet::new());
    for entry in walkdir::WalkDir::new(&root).sort_by_file_name() {
        let path = entry.unwrap().into_path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        // Fragments (common.toml, ar_base.toml, tables.toml) are not specs of their own.
        let Ok(own) = load(&path, &opts(None)) else {
            continue;
        };
        for profile in profiles(&path).unwrap() {
            // A profile inherited from an include need not fit the including spec (its
            // refusal is the loader's ordinary error, tested elsewhere).
            let Ok(resolved) = load(&path, &opts(Some(profile.clone()))) else {
                continue;
            };
            profiles_seen += 1;
            let warned = resolved
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("--profile {profile}:")) && w.contains("test set"));
            let differs = resolved.runs.iter().any(|run| {
                !own.runs.iter().any(|o| {
                    o.seed == run.seed && o.task.test_set_fields() == run.task.test_set_fields()
                })
            });
            assert_eq!(
                warned,
                differs,
                "{} --profile {profile}: {:?}",
                path.display(),
                resolved.warnings
            );
            for run in &resolved.runs {
                let fields = run.task.test_set_fields();
                let Some((_, name)) = paper.iter().find(|(f, _)| *f == fields) else {
                    continue;
                };
                if run.seed != 42 {
                    continue;
                }
                let key = serde_json::to_string(&run.task).unwrap();
                let got = generated.entry(key).or_insert_with(|| {
                    let n = run.task.test_size();
                    fnv(&run.task.generate(run.seed, Split::Test, n).unwrap())
                });
                assert_eq!(
                    got.as_str(),
                    fixture()["datasets"][name]["splits"]["test"]["fnv"]
                        .as_str()
                        .unwrap(),
                    "{} --profile {profile}: the test set of {name}",
                    path.display()
                );
                pinned.insert(*name);
            }
        }
    }
    assert!(profiles_seen >= 10, "{profiles_seen} profiles seen");
    // Under their cpu profiles, all four paper tasks keep the paper's test set.
    assert_eq!(pinned.len(), 4, "{pinned:?}");
}
