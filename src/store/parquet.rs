//! Parquet files with key-value metadata, written atomically.

use std::path::Path;

use polars::prelude::*;

use super::{StoreError, atomic};

fn polars_err(path: &Path) -> impl FnOnce(PolarsError) -> StoreError + '_ {
    move |source| StoreError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `df` with key-value `metadata` to `path` atomically (zstd-compressed).
pub fn write_parquet(
    path: &Path,
    df: &mut DataFrame,
    metadata: &[(&str, String)],
) -> Result<(), StoreError> {
    let bytes = encode(path, df, metadata)?;
    atomic::write(path, &bytes)?;
    Ok(())
}

/// The Parquet bytes of `df` with key-value `metadata` (`path` names it in errors).
pub fn encode(
    path: &Path,
    df: &mut DataFrame,
    metadata: &[(&str, String)],
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    let kv = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    ParquetWriter::new(&mut bytes)
        .with_compression(ParquetCompression::Zstd(None))
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(kv)))
        .finish(df)
        .map_err(polars_err(path))?;
    Ok(bytes)
}

/// The frame in Parquet `bytes` read from `path`.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<DataFrame, StoreError> {
    ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(polars_err(path))
}

pub fn read_parquet(path: &Path) -> Result<DataFrame, StoreError> {
    let file = std::fs::File::open(path).map_err(StoreError::io(path))?;
    ParquetReader::new(file).finish().map_err(polars_err(path))
}

/// The key-value metadata of a Parquet file.
pub fn read_parquet_metadata(path: &Path) -> Result<Vec<(String, String)>, StoreError> {
    let file = std::fs::File::open(path).map_err(StoreError::io(path))?;
    let mut reader = ParquetReader::new(file);
    let meta = reader.get_metadata().map_err(polars_err(path))?;
    Ok(meta
        .key_value_metadata
        .iter()
        .flatten()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect())
}
