//! The merged documents as JSONL or Parquet, written through a temp file and a rename.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use lm_core::fsutil::AtomicFile;
use parquet::arrow::ArrowWriter;

use super::config::OutputFormat;
use super::document::Document;
use crate::error::{DataError, Result};

/// Writes `docs` to `dir/documents.{jsonl,parquet}`; returns the path.
pub fn write_documents(dir: &Path, docs: &[Document], format: OutputFormat) -> Result<PathBuf> {
    let path = dir.join(match format {
        OutputFormat::Jsonl => "documents.jsonl",
        OutputFormat::Parquet => "documents.parquet",
    });
    let out = AtomicFile::create(&path)?;
    let out = match format {
        OutputFormat::Jsonl => write_jsonl(&path, out, docs)?,
        OutputFormat::Parquet => write_parquet(&path, out, docs)?,
    };
    out.commit()?;
    Ok(path)
}

fn write_jsonl(path: &Path, mut out: AtomicFile, docs: &[Document]) -> Result<AtomicFile> {
    let io = |e| DataError::io(path, e);
    for d in docs {
        serde_json::to_writer(&mut out, d).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    Ok(out)
}

/// Columns: url, record_id, source, language, language_score, pii_masked, text, and one
/// float column per classifier score (`score_<name>`).
fn write_parquet(path: &Path, out: AtomicFile, docs: &[Document]) -> Result<AtomicFile> {
    let bad =
        |e: &dyn std::fmt::Display| DataError::bad_file(path, format!("writing Parquet: {e}"));
    let strings = |f: &dyn Fn(&Document) -> Option<String>| -> ArrayRef {
        Arc::new(docs.iter().map(f).collect::<StringArray>())
    };
    let mut fields = vec![
        Field::new("url", DataType::Utf8, true),
        Field::new("record_id", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, false),
        Field::new("language", DataType::Utf8, true),
        Field::new("language_score", DataType::Float32, true),
        Field::new("pii_masked", DataType::UInt64, false),
        Field::new("text", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        strings(&|d| d.url.clone()),
        strings(&|d| d.record_id.clone()),
        strings(&|d| Some(d.source.clone())),
        strings(&|d| d.language.clone()),
        Arc::new(
            docs.iter()
                .map(|d| d.language_score)
                .collect::<Float32Array>(),
        ),
        Arc::new(
            docs.iter()
                .map(|d| Some(d.pii_masked as u64))
                .collect::<UInt64Array>(),
        ),
        strings(&|d| Some(d.text.clone())),
    ];
    let mut score_names: Vec<&String> = docs.iter().flat_map(|d| d.scores.keys()).collect();
    score_names.sort();
    score_names.dedup();
    for name in score_names {
        fields.push(Field::new(format!("score_{name}"), DataType::Float32, true));
        columns.push(Arc::new(
            docs.iter()
                .map(|d| d.scores.get(name).copied())
                .collect::<Float32Array>(),
        ));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| bad(&e))?;
    let mut writer = ArrowWriter::try_new(out, schema, None).map_err(|e| bad(&e))?;
    writer.write(&batch).map_err(|e| bad(&e))?;
    writer.into_inner().map_err(|e| bad(&e))
}
