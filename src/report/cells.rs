//! Reading collected tables: columns as plain vectors, and the interchange grid's cells pooled
//! as the reference pools them. Shared by the figures and the report tables.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;

use super::ReportError;

/// One (run, layer, patch role) cell of the interchange grid at the run's final step, for the
/// site and corrupted role a figure reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub run: String,
    pub layer: i64,
    pub role: String,
    pub n: f64,
    pub p_orig: f64,
    pub p_corr: f64,
    pub p_rest: f64,
}

impl Cell {
    pub fn attrib(&self) -> f64 {
        (self.p_rest - self.p_corr) / (self.p_orig - self.p_corr)
    }
}

fn err(what: &str) -> impl Fn(PolarsError) -> ReportError + '_ {
    move |e| ReportError::Shard {
        path: what.to_string(),
        message: e.to_string(),
    }
}

/// Column `name` as text, or empty strings where the table lacks it.
pub fn text(df: &DataFrame, name: &str) -> Result<Vec<String>, ReportError> {
    let Ok(c) = df.column(name) else {
        return Ok(vec![String::new(); df.height()]);
    };
    let c = c.cast(&DataType::String).map_err(err(name))?;
    Ok(c.str()
        .map_err(err(name))?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

/// Column `name` as numbers (NaN where missing).
pub fn numbers(df: &DataFrame, name: &str) -> Result<Vec<f64>, ReportError> {
    let Ok(c) = df.column(name) else {
        return Ok(vec![f64::NAN; df.height()]);
    };
    let c = c.cast(&DataType::Float64).map_err(err(name))?;
    Ok(c.f64()
        .map_err(err(name))?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// The interchange cells of a collected interventions table at `site` with `corrupted`
/// corrupted, at each run's last intervention step, pooled over intervention blocks: the
/// probabilities are n-weighted means, so a cell's Attrib is the reference's ratio of means.
pub fn interchange_cells(
    df: &DataFrame,
    site: &str,
    corrupted: &str,
) -> Result<Vec<Cell>, ReportError> {
    let (ids, sites, corrupted_roles, roles) = (
        text(df, "run_id")?,
        text(df, "site")?,
        text(df, "corrupted_role")?,
        text(df, "patch_role")?,
    );
    let (steps, layers, n) = (
        numbers(df, "step")?,
        numbers(df, "layer")?,
        numbers(df, "n")?,
    );
    let (po, pc, pr) = (
        numbers(df, "p_orig")?,
        numbers(df, "p_corr")?,
        numbers(df, "p_rest")?,
    );
    let rows: Vec<usize> = (0..df.height())
        .filter(|&i| sites[i] == site && corrupted_roles[i] == corrupted)
        .collect();
    let mut last: HashMap<&str, f64> = HashMap::new();
    for &i in &rows {
        let e = last.entry(ids[i].as_str()).or_insert(steps[i]);
        *e = e.max(steps[i]);
    }
    let mut pooled: BTreeMap<(String, i64, String), [f64; 4]> = BTreeMap::new();
    for &i in rows.iter().filter(|&&i| last[ids[i].as_str()] == steps[i]) {
        let e = pooled
            .entry((ids[i].clone(), layers[i] as i64, roles[i].clone()))
            .or_insert([0.0; 4]);
        e[0] += n[i];
        e[1] += n[i] * po[i];
        e[2] += n[i] * pc[i];
        e[3] += n[i] * pr[i];
    }
    Ok(pooled
        .into_iter()
        .map(|((run, layer, role), s)| Cell {
            run,
            layer,
            role,
            n: s[0],
            p_orig: s[1] / s[0],
            p_corr: s[2] / s[0],
            p_rest: s[3] / s[0],
        })
        .collect())
}
