//! `mechlab export table`: a collected table, joined with the runs' parameters and filtered, as
//! Parquet or CSV.

use std::path::Path;

use polars::prelude::*;

use crate::report::tables::PARAMS_COLUMN;
use crate::report::{ReportError, Tables};
use crate::store::{Table, write_atomic, write_parquet};

fn polars_err(path: &Path) -> impl Fn(PolarsError) -> ReportError + '_ {
    move |e| ReportError::Shard {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// One of an experiment's tables; every table but `runs` gets the runs' columns (parameters,
/// seed, status) joined on `run_id`, so it can be filtered by them.
pub fn joined_table(tables: &Tables, which: Table) -> Result<DataFrame, ReportError> {
    let table = tables.get(which).ok_or_else(|| ReportError::Shard {
        path: which.file_name().to_string(),
        message: format!("no {which} table: this experiment has no {which} results yet"),
    })?;
    if which == Table::Runs {
        return Ok(table.clone());
    }
    // Columns of both tables other than the key come from the table itself; the runs' JSON of
    // every parameter stays in the runs table (one copy per run, not per observation).
    let keep: Vec<String> = tables
        .runs
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c == "run_id" || (table.column(c).is_err() && c != PARAMS_COLUMN))
        .collect();
    let path = Path::new(Table::Runs.file_name());
    let runs = tables.runs.select(keep).map_err(polars_err(path))?;
    table
        .left_join(&runs, ["run_id"], ["run_id"])
        .map_err(polars_err(Path::new(which.file_name())))
}

/// Keeps the rows where every `(column, value)` holds, comparing the column's values as text
/// (`model.mixer=based`, `model.d_model=64`, `train.lr=0.001`).
pub fn filter(mut df: DataFrame, filters: &[(String, String)]) -> Result<DataFrame, ReportError> {
    for (column, value) in filters {
        let bad = |message: String| ReportError::Shard {
            path: format!("--filter {column}={value}"),
            message,
        };
        let col = df.column(column).map_err(|_| {
            let names: Vec<String> = df
                .get_column_names()
                .iter()
                .map(|c| c.to_string())
                .collect();
            bad(format!(
                "no column \"{column}\"; columns: {}",
                names.join(", ")
            ))
        })?;
        let text = col
            .cast(&DataType::String)
            .map_err(|e| bad(e.to_string()))?;
        let numeric = value.parse::<f64>().ok();
        let mask: BooleanChunked = text
            .str()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|v| {
                v.is_some_and(|v| {
                    v == value || numeric.is_some_and(|n| v.parse::<f64>().is_ok_and(|x| x == n))
                })
            })
            .collect();
        df = df.filter(&mask).map_err(|e| bad(e.to_string()))?;
    }
    Ok(df)
}

/// The file format of an exported table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileFormat {
    #[default]
    Parquet,
    Csv,
}

impl FileFormat {
    pub const ALL: [FileFormat; 2] = [FileFormat::Parquet, FileFormat::Csv];

    /// The format's name, also its file extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
        }
    }
}

/// Writes `df` to `path` in `format`, atomically.
pub fn write_table(df: &mut DataFrame, path: &Path, format: FileFormat) -> Result<(), ReportError> {
    if format == FileFormat::Csv {
        let mut bytes = Vec::new();
        CsvWriter::new(&mut bytes)
            .finish(df)
            .map_err(polars_err(path))?;
        write_atomic(path, &bytes)?;
        Ok(())
    } else {
        write_parquet(path, df, &[("mechlab.version", crate::VERSION.to_string())])?;
        Ok(())
    }
}

/// `mechlab export table`: table `which` of `tables`, the runs' columns joined, the rows kept
/// where every filter holds.
pub fn export_table(
    tables: &Tables,
    which: Table,
    filters: &[(String, String)],
) -> Result<DataFrame, ReportError> {
    filter(joined_table(tables, which)?, filters)
}
