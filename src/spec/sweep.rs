//! Sweep expansion: grid × zip groups, then `when` overrides and `exclude` filters, in a
//! deterministic order (axes sorted by key, values in the order written). Seeds are added
//! afterwards, innermost, when [`super::load`] resolves the runs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::raw::SweepSpec;

/// One expanded point before typing: the full spec value plus what the sweep set.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The spec value (without `sweep`, `profile`, `include`) with this point's values applied.
    pub value: Value,
    /// Axis values of this point, in axis order: these name the run and become table columns.
    pub axes: Vec<(String, Value)>,
    /// For every key the sweep set (axes and `when` overrides): its raw path in the spec file,
    /// so errors point at the sweep line that produced the value.
    pub set_by: BTreeMap<String, Vec<String>>,
}

/// A structural problem of the sweep section: (raw path, message).
pub type SweepProblem = (Vec<String>, String);

/// Sections a sweep key may start with: what a run point is made of.
const SWEPT_SECTIONS: [&str; 3] = ["task", "model", "train"];

/// Why `key` cannot be swept, or `None`: the experiment's identity and the sweep machinery are
/// off limits, and a key outside the run's sections (a typo such as `modle.d_model`) would
/// silently make runs that differ in nothing.
fn unsweepable(key: &str) -> Option<String> {
    let top = key.split('.').next().unwrap_or("");
    if ["experiment", "sweep", "profile", "include"].contains(&top) {
        return Some(format!(
            "`{key}` cannot be swept (use experiment.seeds for seeds)"
        ));
    }
    if SWEPT_SECTIONS.contains(&top) && key.len() > top.len() + 1 {
        return None;
    }
    let hint = super::error::suggest(top, SWEPT_SECTIONS)
        .map(|s| format!("; did you mean \"{s}{}\"?", &key[top.len()..]))
        .unwrap_or_default();
    Some(format!(
        "`{key}` is not a key of a run: a swept key is `task.…`, `model.…` or `train.…`{hint}"
    ))
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Expands `sweep` over `base`. Keys in `pinned` (set by `--set` or the environment) are not
/// swept; each dropped axis yields a warning.
pub fn expand(
    base: &Value,
    sweep: &SweepSpec,
    pinned: &BTreeSet<String>,
) -> Result<(Vec<Point>, Vec<String>), Vec<SweepProblem>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut groups: Vec<Vec<Alt>> = Vec::new();

    for (key, values) in &sweep.grid {
        let raw = path(&["sweep", "grid", key]);
        if let Some(why) = unsweepable(key) {
            problems.push((raw, why));
            continue;
        }
        if values.is_empty() {
            problems.push((raw, "a sweep axis needs at least one value".into()));
            continue;
        }
        if pinned.contains(key) {
            warnings.push(format!(
                "sweep axis `{key}` ignored: the key is pinned by --set or the environment"
            ));
            continue;
        }
        groups.push(
            values
                .iter()
                .map(|v| vec![(key.clone(), v.clone(), raw.clone())])
                .collect(),
        );
    }
    groups.extend(zip_groups(sweep, pinned, &mut problems, &mut warnings));
    for (w, rule) in sweep.when.iter().enumerate() {
        for key in rule.condition.keys().chain(rule.set.keys()) {
            if let Some(why) = unsweepable(key) {
                problems.push((
                    path(&["sweep", "when", &w.to_string()]),
                    format!("in a sweep rule: {why}"),
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Refuse a grid too large to expand before expanding it (a typo'd 10⁸-point grid would
    // otherwise exhaust memory inside `validate`).
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let total = sizes.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n));
    if total.is_none_or(|t| t > MAX_POINTS) {
        let shown: Vec<String> = sizes.iter().map(usize::to_string).collect();
        return Err(vec![(
            path(&["sweep"]),
            format!(
                "the sweep expands to {} points ({}); at most {MAX_POINTS} per spec: split it \
                 into several specs (a folder of specs runs as one batch)",
                total.map_or("more than 2^64".to_string(), |t| t.to_string()),
                shown.join(" × ")
            ),
        )]);
    }

    let combos = product(&groups);

    let mut points = Vec::new();
    let mut when_used = vec![false; sweep.when.len()];
    let mut exclude_used = vec![false; sweep.exclude.len()];
    'combo: for combo in combos {
        let mut value = base.clone();
        let mut set_by = BTreeMap::new();
        let mut axes = Vec::new();
        for (key, v, raw) in combo {
            set_dotted(&mut value, &key, v.clone());
            set_by.insert(key.clone(), raw);
            axes.push((key, v));
        }
        for (w, rule) in sweep.when.iter().enumerate() {
            if matches(&value, &rule.condition) {
                when_used[w] = true;
                for (key, v) in &rule.set {
                    if pinned.contains(key) {
                        continue;
                    }
                    set_dotted(&mut value, key, v.clone());
                    set_by.insert(
                        key.clone(),
                        path(&["sweep", "when", &w.to_string(), "set", key]),
                    );
                }
            }
        }
        for (e, rule) in sweep.exclude.iter().enumerate() {
            if matches(&value, rule) {
                exclude_used[e] = true;
                continue 'combo;
            }
        }
        points.push(Point {
            value,
            axes,
            set_by,
        });
    }
    problems.extend(unused_rules(sweep, &when_used, &exclude_used));
    if points.is_empty() && problems.is_empty() {
        problems.push((
            path(&["sweep", "exclude"]),
            "the exclusions remove every point of the sweep: nothing would run".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok((points, warnings))
}

/// An alternative of a sweep group: the (key, value, raw path of where it was written) it sets.
type Alt = Vec<(String, Value, Vec<String>)>;

/// One group per `[[sweep.zip]]` table: its axes' i-th values form the i-th alternative.
fn zip_groups(
    sweep: &SweepSpec,
    pinned: &BTreeSet<String>,
    problems: &mut Vec<SweepProblem>,
    warnings: &mut Vec<String>,
) -> Vec<Vec<Alt>> {
    let mut groups = Vec::new();
    for (g, group) in sweep.zip.iter().enumerate() {
        let lens: BTreeSet<usize> = group.values().map(Vec::len).collect();
        let group_path = path(&["sweep", "zip", &g.to_string()]);
        if lens.len() > 1 {
            let detail: Vec<String> = group
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.len()))
                .collect();
            problems.push((
                group_path,
                format!(
                    "zipped axes need lists of equal length ({})",
                    detail.join(", ")
                ),
            ));
            continue;
        }
        if lens.first() == Some(&0) {
            problems.push((group_path, "a sweep axis needs at least one value".into()));
            continue;
        }
        let keys: Vec<&String> = group
            .keys()
            .filter(|k| {
                if let Some(why) = unsweepable(k) {
                    problems.push((path(&["sweep", "zip", &g.to_string(), k]), why));
                    false
                } else if pinned.contains(*k) {
                    warnings.push(format!(
                        "zipped axis `{k}` ignored: the key is pinned by --set or the environment"
                    ));
                    false
                } else {
                    true
                }
            })
            .collect();
        if keys.is_empty() {
            continue;
        }
        let n = lens.first().copied().unwrap_or(0);
        groups.push(
            (0..n)
                .map(|i| {
                    keys.iter()
                        .map(|k| {
                            (
                                (*k).clone(),
                                group[*k][i].clone(),
                                path(&["sweep", "zip", &g.to_string(), k]),
                            )
                        })
                        .collect()
                })
                .collect(),
        );
    }
    groups
}

/// The Cartesian product over groups, first group outermost: each combination concatenates one
/// alternative of every group.
fn product(groups: &[Vec<Alt>]) -> Vec<Alt> {
    let mut combos: Vec<Alt> = vec![Vec::new()];
    for group in groups {
        combos = combos
            .into_iter()
            .flat_map(|prefix| {
                group.iter().map(move |alt| {
                    let mut c = prefix.clone();
                    c.extend(alt.iter().cloned());
                    c
                })
            })
            .collect();
    }
    combos
}

/// A rule that never applies is a typo in its key or value, not an intent: each is a problem.
fn unused_rules(sweep: &SweepSpec, when_used: &[bool], exclude_used: &[bool]) -> Vec<SweepProblem> {
    let mut problems = Vec::new();
    for (w, used) in when_used.iter().enumerate() {
        if !used {
            problems.push((
                path(&["sweep", "when", &w.to_string()]),
                format!(
                    "this rule's `if` ({}) matches no point of the sweep: check its keys and values",
                    describe(&sweep.when[w].condition)
                ),
            ));
        }
    }
    for (e, used) in exclude_used.iter().enumerate() {
        if !used {
            problems.push((
                path(&["sweep", "exclude", &e.to_string()]),
                format!(
                    "this exclusion ({}) matches no point of the sweep: check its keys and values",
                    describe(&sweep.exclude[e])
                ),
            ));
        }
    }
    problems
}

/// The most points one spec's sweep may expand to (before seeds).
pub const MAX_POINTS: usize = 10_000;

/// `key = value, …` of a condition, for messages.
fn describe(condition: &BTreeMap<String, Value>) -> String {
    condition
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether every `key = expected` of `condition` holds in `value`; a list means "any of".
pub fn matches(value: &Value, condition: &BTreeMap<String, Value>) -> bool {
    condition.iter().all(|(key, expected)| {
        let actual = get_dotted(value, key);
        match (actual, expected) {
            (Some(a), e) if same(a, e) => true,
            (Some(a), Value::Array(options)) => options.iter().any(|o| same(a, o)),
            _ => false,
        }
    })
}

/// JSON equality with numbers compared by value (so `64` matches `64.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub fn get_dotted<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.').try_fold(value, |v, part| v.get(part))
}

pub fn set_dotted(value: &mut Value, key: &str, new: Value) {
    let mut cur = value;
    let parts: Vec<&str> = key.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if let Value::Object(map) = cur
            && !map.get(*part).is_some_and(Value::is_object)
        {
            map.insert(part.to_string(), Value::Object(Default::default()));
        }
        cur = match cur {
            Value::Object(map) => map.get_mut(*part).expect("just inserted"),
            _ => return,
        };
    }
    if let Value::Object(map) = cur {
        map.insert(parts[parts.len() - 1].to_string(), new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sweep(v: Value) -> SweepSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn grid_times_zip_counts_and_order() {
        let base = json!({"model": {"mixer": "attention", "d_model": 64}, "train": {"lr": 1.0}});
        let s = sweep(json!({
            "grid": {"model.d_model": [16, 32, 64], "train.lr": [1e-3, 1e-4]},
            "zip": [{"model.layers": [1, 2], "train.batch_size": [8, 16]}]
        }));
        let (points, warnings) = expand(&base, &s, &BTreeSet::new()).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(points.len(), 3 * 2 * 2);
        // First group outermost; zipped values stay paired.
        assert_eq!(points[0].axes[0], ("model.d_model".into(), json!(16)));
        assert_eq!(points[1].axes[3], ("train.batch_size".into(), json!(16)));
        for p in &points {
            let layers = get_dotted(&p.value, "model.layers")
                .unwrap()
                .as_u64()
                .unwrap();
            let bs = get_dotted(&p.value, "train.batch_size")
                .unwrap()
                .as_u64()
                .unwrap();
            assert_eq!(bs, 8 * layers);
        }
    }

    #[test]
    fn when_overrides_and_exclusions_apply() {
        let base = json!({"model": {"mixer": "attention"}});
        let s = sweep(json!({
            "grid": {"model.mixer": ["attention", "mamba", "hyena"], "model.d_model": [16, 32]},
            "when": [{"if": {"model.mixer": "mamba"}, "set": {"model.mlp": false}}],
            "exclude": [{"model.mixer": "hyena", "model.d_model": [16, 32.0]}]
        }));
        let (points, _) = expand(&base, &s, &BTreeSet::new()).unwrap();
        assert_eq!(points.len(), 4);
        for p in &points {
            let mixer = get_dotted(&p.value, "model.mixer").unwrap();
            let mlp = get_dotted(&p.value, "model.mlp");
            assert_eq!(mlp.is_some(), mixer == "mamba");
            if mixer == "mamba" {
                assert_eq!(
                    p.set_by["model.mlp"],
                    path(&["sweep", "when", "0", "set", "model.mlp"])
                );
            }
        }
    }

    #[test]
    fn structural_problems_are_reported_with_their_paths() {
        let s = sweep(json!({
            "grid": {"experiment.name": ["a"], "train.lr": []},
            "zip": [{"a.b": [1, 2], "c.d": [1]}]
        }));
        let problems = expand(&json!({}), &s, &BTreeSet::new()).unwrap_err();
        assert_eq!(problems.len(), 3);
        assert_eq!(problems[0].0, path(&["sweep", "grid", "experiment.name"]));
        assert!(problems[2].1.contains("equal length"), "{}", problems[2].1);
    }

    #[test]
    fn pinned_keys_are_not_swept() {
        let s = sweep(json!({"grid": {"train.lr": [1, 2], "model.d_model": [16, 32]}}));
        let pinned = BTreeSet::from(["train.lr".to_string()]);
        let (points, warnings) = expand(&json!({}), &s, &pinned).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(warnings.len(), 1);
    }
}
