//! `lm data extract | warc-info`: the text half of the lab-4 pipeline — HTML → text, and a
//! summary of a WARC/WET file (records per type, damaged stretches with their offsets).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use lm_data::html::extract_text_with_content_type;
use lm_data::warc::WarcReader;
use serde_json::json;

#[derive(Subcommand)]
pub enum TextCommand {
    /// Visible text of an HTML page (raw bytes, any charset) to stdout; FILE "-" reads stdin.
    Extract {
        file: PathBuf,
        /// The HTTP Content-Type of the page, whose charset then takes precedence.
        #[arg(long)]
        content_type: Option<String>,
    },
    /// Count the records of a WARC/WET file (plain or gzip) per type and list damaged
    /// stretches with their byte offsets; prints JSON.
    WarcInfo {
        file: PathBuf,
        /// Also list every record: offset, type, target URI, block length.
        #[arg(long)]
        records: bool,
    },
}

pub fn run(cmd: TextCommand) -> Result<()> {
    match cmd {
        TextCommand::Extract { file, content_type } => {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading stdin")?;
                bytes
            } else {
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let text = extract_text_with_content_type(&bytes, content_type.as_deref());
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
        TextCommand::WarcInfo { file, records } => warc_info(file, records),
    }
}

fn warc_info(file: PathBuf, list_records: bool) -> Result<()> {
    let reader = WarcReader::open(&file)?;
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut listed = Vec::new();
    let mut total = 0u64;
    for item in reader {
        match item {
            Ok(record) => {
                total += 1;
                *types.entry(record.record_type().to_string()).or_default() += 1;
                if list_records {
                    listed.push(json!({
                        "offset": record.offset,
                        "type": record.record_type().to_string(),
                        "target_uri": record.target_uri(),
                        "length": record.block.len(),
                    }));
                }
            }
            Err(e) => errors.push(json!({"offset": e.offset, "message": e.message})),
        }
    }
    let mut report = json!({
        "file": file.display().to_string(),
        "records": total,
        "types": types,
        "errors": errors,
    });
    if list_records {
        report["record_list"] = json!(listed);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
