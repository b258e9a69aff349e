//! SFT data: prompt/output tokenization with a response mask, and the packed instruction
//! dataset (Alpaca template, fixed-length windows of one token stream) with its batch iterator.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tokenizers::Tokenizer;

/// Token ids of a batch of prompt+output sequences, right-padded, shifted by one:
/// `labels[i][t]` is the token after `input_ids[i][t]`; `response_mask[i][t]` is true where
/// that label is an output token (not prompt, not padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptOutputBatch {
    pub input_ids: Vec<Vec<u32>>,
    pub labels: Vec<Vec<u32>>,
    pub response_mask: Vec<Vec<bool>>,
}

/// Tokenize each prompt and output separately (no special tokens added), then build the batch
/// with [`batch_from_ids`]. Errors name the failing string's index.
pub fn tokenize_prompt_and_output(
    prompts: &[&str],
    outputs: &[&str],
    tokenizer: &Tokenizer,
    pad_id: u32,
) -> Result<PromptOutputBatch, String> {
    if prompts.len() != outputs.len() {
        return Err(format!(
            "tokenize_prompt_and_output: {} prompts but {} outputs",
            prompts.len(),
            outputs.len()
        ));
    }
    let encode = |kind: &str, i: usize, text: &str| -> Result<Vec<u32>, String> {
        tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("tokenize_prompt_and_output: {kind} {i}: {e}"))
    };
    let mut prompt_ids = Vec::with_capacity(prompts.len());
    let mut output_ids = Vec::with_capacity(outputs.len());
    for (i, (p, o)) in prompts.iter().zip(outputs).enumerate() {
        prompt_ids.push(encode("prompt", i, p)?);
        output_ids.push(encode("output", i, o)?);
    }
    Ok(batch_from_ids(&prompt_ids, &output_ids, pad_id))
}

/// The batch from already-tokenized prompts and outputs: each pair concatenated, right-padded
/// with `pad_id` to the longest, then `input_ids` drops the last position and `labels` the
/// first (so both have length max_len − 1).
pub fn batch_from_ids(
    prompt_ids: &[Vec<u32>],
    output_ids: &[Vec<u32>],
    pad_id: u32,
) -> PromptOutputBatch {
    let max_len = prompt_ids
        .iter()
        .zip(output_ids)
        .map(|(p, o)| p.len() + o.len())
        .max()
        .unwrap_or(0);
    let width = max_len.saturating_sub(1);
    let mut batch = PromptOutputBatch {
        input_ids: Vec::new(),
        labels: Vec::new(),
        response_mask: Vec::new(),
    };
    for (p, o) in prompt_ids.iter().zip(output_ids) {
        let mut seq: Vec<u32> = p.iter().chain(o).copied().collect();
        let mut is_output: Vec<bool> = (0..seq.len()).map(|t| t >= p.len()).collect();
        seq.resize(max_len, pad_id);
        is_output.resize(max_len, false);
        batch.input_ids.push(seq[..width].to_vec());
        batch.labels.push(seq[1..].to_vec());
        batch.response_mask.push(is_output[1..].to_vec());
    }
    batch
}

/// One instruction example of an SFT jsonl file.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SftExample {
    pub prompt: String,
    pub response: String,
}

/// One packed training example: `labels` is `input_ids` shifted by one in the token stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PackedExample {
    pub input_ids: Vec<u32>,
    pub labels: Vec<u32>,
}

/// The course's Alpaca SFT template (`a5/prompts/alpaca_sft.prompt`).
pub const ALPACA_TEMPLATE: &str = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n{response}";

/// Read `{prompt, response}` lines; errors name the file and line.
pub fn read_sft_jsonl(path: &Path) -> Result<Vec<SftExample>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Pack `examples` for SFT: each is formatted with `template` (`{instruction}`, `{response}`),
/// encoded without the tokenizer's own special tokens and wrapped as `bos_id` … `eos_id`
/// (Llama 3: 128000 … 128001; not every tokenizer.json adds BOS itself);
/// all are concatenated into one stream cut into consecutive `seq_len` windows, the last
/// partial window dropped. With `shuffle_seed`, the examples' order is shuffled first.
pub fn pack_sft_examples(
    examples: &[SftExample],
    tokenizer: &Tokenizer,
    template: &str,
    bos_id: u32,
    eos_id: u32,
    seq_len: usize,
    shuffle_seed: Option<u64>,
) -> Result<Vec<PackedExample>, String> {
    if seq_len == 0 {
        return Err("pack_sft_examples: seq_len must be positive".into());
    }
    let mut order: Vec<usize> = (0..examples.len()).collect();
    if let Some(seed) = shuffle_seed {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    let mut stream = Vec::new();
    for i in order {
        let ex = &examples[i];
        let text = template
            .replace("{instruction}", &ex.prompt)
            .replace("{response}", &ex.response);
        let enc = tokenizer
            .encode(text, false)
            .map_err(|e| format!("pack_sft_examples: example {i}: {e}"))?;
        stream.push(bos_id);
        stream.extend_from_slice(enc.get_ids());
        stream.push(eos_id);
    }
    // Labels need one token past each window, hence len − 1.
    let n = stream.len().saturating_sub(1) / seq_len;
    Ok((0..n)
        .map(|k| PackedExample {
            input_ids: stream[k * seq_len..(k + 1) * seq_len].to_vec(),
            labels: stream[k * seq_len + 1..(k + 1) * seq_len + 1].to_vec(),
        })
        .collect())
}

/// Batches of `batch_size` packed examples (the last may be shorter), in a shuffled order
/// when `shuffle_seed` is given. Each batch is (input_ids, labels), row-major. A
/// `batch_size` of 0 is taken as 1.
pub fn iterate_batches(
    dataset: &[PackedExample],
    batch_size: usize,
    shuffle_seed: Option<u64>,
) -> impl Iterator<Item = (Vec<Vec<u32>>, Vec<Vec<u32>>)> + '_ {
    let mut order: Vec<usize> = (0..dataset.len()).collect();
    if let Some(seed) = shuffle_seed {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    let batch_size = batch_size.max(1);
    let chunks: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    chunks.into_iter().map(move |idx| {
        idx.iter()
            .map(|&i| (dataset[i].input_ids.clone(), dataset[i].labels.clone()))
            .unzip()
    })
}
