//! The pretrained decoder: the KV-cache path against full recomputation, GGUF against
//! safetensors loading of the same weights, and clear errors for bad model files.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use lm_core::generate::CausalLm;
use lm_core::pretrained::gguf::{GgmlType, GgufValue, GgufWriter};
use lm_core::pretrained::weights::{SafetensorsDir, WeightSource};
use lm_core::pretrained::{Decoder, DecoderConfig, gguf_model};

type B = burn::backend::NdArray<f32>;

fn shared() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn golden_model(name: &str) -> PathBuf {
    shared().join("golden/models").join(name)
}

fn values(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// Last-position logits of each sequence by a full forward pass (no cache).
fn full_last_logits(model: &Decoder<B>, seq: &[u32]) -> Vec<f32> {
    let dev = Default::default();
    let t = seq.len();
    let ids: Vec<i64> = seq.iter().map(|&x| x as i64).collect();
    let pos: Vec<i64> = (0..t as i64).collect();
    let logits = model
        .forward(
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, t]), &dev),
            Tensor::<B, 2, Int>::from_data(TensorData::new(pos, [1, t]), &dev),
            None,
        )
        .unwrap();
    let v = model.config.vocab_size;
    values(logits.slice([0..1, t - 1..t, 0..v]).reshape([1, v]))
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "{what}: max abs diff {worst}");
}

#[test]
fn cached_decoding_of_ragged_rows_matches_full_forward() {
    let dev = Default::default();
    let model = Decoder::<B>::from_hf_dir(&golden_model("qwen2-tiny-tied"), &dev).unwrap();
    let prompts: [Vec<u32>; 3] = [
        vec![5, 17, 3],
        vec![9, 2, 44, 61, 7, 7, 130],
        vec![1, 250, 31, 8, 99],
    ];
    // Rows 2, 0 and 3 of a 4-row cache: row 1 stays idle throughout.
    let rows = [2usize, 0, 3];
    let mut cache = model.new_cache(4, 16);
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let logits = values(model.prefill(&mut cache, &rows, &refs));
    let v = model.config.vocab_size;
    let mut seqs = prompts.clone();
    for (i, seq) in seqs.iter().enumerate() {
        assert_close(
            &logits[i * v..(i + 1) * v],
            &full_last_logits(&model, seq),
            "prefill",
        );
    }
    // Decode steps with a changing subset of rows, as continuous batching does.
    let schedule: [&[usize]; 4] = [&[0, 1, 2], &[0, 2], &[1], &[0, 1, 2]];
    for (step, active) in schedule.iter().enumerate() {
        let tokens: Vec<u32> = active
            .iter()
            .map(|&i| (step * 37 + i * 11) as u32 % 300)
            .collect();
        let act_rows: Vec<usize> = active.iter().map(|&i| rows[i]).collect();
        let logits = values(model.decode(&mut cache, &act_rows, &tokens));
        for (k, (&i, &tok)) in active.iter().zip(&tokens).enumerate() {
            seqs[i].push(tok);
            let what = format!("step {step}, sequence {i}");
            assert_close(
                &logits[k * v..(k + 1) * v],
                &full_last_logits(&model, &seqs[i]),
                &what,
            );
        }
    }
    // Row 0 holds the 7-token prompt, row 2 the 3-token one, row 3 the 5-token one.
    assert_eq!(cache.lens, vec![7 + 3, 0, 3 + 3, 5 + 3]);
}

/// llama.cpp's storage order of Llama q/k rows (the inverse of what the loader undoes).
fn permute_rows(values: &[f32], rows: usize, cols: usize, hd: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for head in 0..rows / hd {
        for j in 0..hd / 2 {
            for t in 0..2 {
                let hf = (head * hd + t * hd / 2 + j) * cols;
                let stored = (head * hd + 2 * j + t) * cols;
                out[stored..stored + cols].copy_from_slice(&values[hf..hf + cols]);
            }
        }
    }
    out
}

/// Writes the tiny HF Llama model as a GGUF the way llama.cpp's converter would, matrices
/// as `matrix_type`.
fn write_llama_gguf(hf: &Path, cfg: &DecoderConfig, out: &Path, matrix_type: GgmlType) {
    let src = SafetensorsDir::open(hf).unwrap();
    let mut w = GgufWriter::new();
    w.set("general.architecture", GgufValue::String("llama".into()));
    let n = |k: &str, v: usize| (format!("llama.{k}"), GgufValue::U32(v as u32));
    for (k, v) in [
        n("block_count", cfg.num_layers),
        n("embedding_length", cfg.hidden_size),
        n("feed_forward_length", cfg.intermediate_size),
        n("attention.head_count", cfg.num_heads),
        n("attention.head_count_kv", cfg.num_kv_heads),
        n("context_length", cfg.max_position_embeddings),
    ] {
        w.set(k, v);
    }
    w.set(
        "llama.rope.freq_base",
        GgufValue::F32(cfg.rope_theta as f32),
    );
    w.set(
        "llama.attention.layer_norm_rms_epsilon",
        GgufValue::F32(cfg.rms_norm_eps as f32),
    );
    let mut names: Vec<String> = src.names().map(str::to_string).collect();
    names.sort();
    for name in names {
        let (vals, dims) = src.load(&name).unwrap();
        let gguf = name
            .replace("model.embed_tokens", "token_embd")
            .replace("model.norm", "output_norm")
            .replace("model.layers.", "blk.")
            .replace("input_layernorm", "attn_norm")
            .replace("post_attention_layernorm", "ffn_norm")
            .replace("self_attn.q_proj", "attn_q")
            .replace("self_attn.k_proj", "attn_k")
            .replace("self_attn.v_proj", "attn_v")
            .replace("self_attn.o_proj", "attn_output")
            .replace("mlp.gate_proj", "ffn_gate")
            .replace("mlp.up_proj", "ffn_up")
            .replace("mlp.down_proj", "ffn_down");
        let vals = if gguf.contains("attn_q") || gguf.contains("attn_k") {
            permute_rows(&vals, dims[0], dims[1], cfg.head_dim)
        } else {
            vals
        };
        let ty = if dims.len() == 2 {
            matrix_type
        } else {
            GgmlType::F32
        };
        w.add_tensor(&gguf, &dims, &vals, ty).unwrap();
    }
    w.write(out).unwrap();
}

#[test]
fn gguf_of_the_same_weights_gives_the_same_logits() {
    let dev = Default::default();
    let dir = golden_model("llama-tiny-smollm2");
    let hf = Decoder::<B>::from_hf_dir(&dir, &dev).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny.gguf");
    write_llama_gguf(&dir, &hf.config, &path, GgmlType::F32);
    let gguf = gguf_model::load::<B>(&path, &dev).unwrap();
    assert_eq!(
        gguf.config.tie_word_embeddings,
        hf.config.tie_word_embeddings
    );
    assert_eq!(gguf.config.num_kv_heads, hf.config.num_kv_heads);
    let seq = [4u32, 77, 12, 250, 3, 91];
    assert_close(
        &full_last_logits(&gguf, &seq),
        &full_last_logits(&hf, &seq),
        "gguf vs safetensors",
    );
}

/// A GGUF model's quantised blocks multiplied directly (decoding on the CPU) give the
/// logits of its dequantised f32 weights: every projection, Llama's row-permuted q/k and the
/// tied output matrix included.
#[test]
fn packed_blocks_give_the_logits_of_the_dequantised_weights() {
    let dev = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg =
        DecoderConfig::from_hf_file(&golden_model("llama-tiny-smollm2").join("config.json"))
            .unwrap();
    // Widths that are whole Q8_0 blocks (32 elements).
    (cfg.hidden_size, cfg.num_heads, cfg.head_dim) = (64, 4, 16);
    let hf_dir = tmp.path().join("hf");
    std::fs::create_dir_all(&hf_dir).unwrap();
    let random = Decoder::<B>::random(cfg.clone(), 3, &dev).unwrap();
    random.save_hf_dir(&hf_dir).unwrap();
    let path = tmp.path().join("q8.gguf");
    write_llama_gguf(&hf_dir, &cfg, &path, GgmlType::Q8_0);

    let plain = gguf_model::load::<B>(&path, &dev).unwrap();
    let packed = gguf_model::load_with::<B>(&path, &dev, true).unwrap();
    let layer = &packed.layers[1];
    assert!(layer.self_attn.qkv_proj.linear.packed.is_some());
    assert!(layer.self_attn.o_proj.packed.is_some() && layer.mlp.w2.packed.is_some());
    assert!(packed.packed_tied_head.is_some());
    assert!(plain.layers[1].mlp.w2.packed.is_none());
    // 6 positions: within the packed products' row limit.
    let seq = [4u32, 77, 12, 250, 3, 91];
    assert_close(
        &full_last_logits(&packed, &seq),
        &full_last_logits(&plain, &seq),
        "packed vs dequantised",
    );
}

fn copy_model(name: &str, to: &Path) {
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(golden_model(name).join(f), to.join(f)).unwrap();
    }
}

#[test]
fn bad_model_files_are_named() {
    let dev = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_model("qwen2-tiny-tied", dir);

    // A config whose hidden size disagrees with the weights names the tensor.
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(
        &cfg_path,
        text.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96"),
    )
    .unwrap();
    let err = Decoder::<B>::from_hf_dir(dir, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mlp.gate_proj.weight") && err.contains("[96, 64]"),
        "{err}"
    );
    std::fs::write(&cfg_path, text).unwrap();

    // A truncated safetensors file.
    let st = dir.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let err = Decoder::<B>::from_hf_dir(dir, &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // An index naming a shard that is not there.
    std::fs::remove_file(&st).unwrap();
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        r#"{"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let err = Decoder::<B>::from_hf_dir(dir, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model-00001-of-00002.safetensors") && err.contains("missing"),
        "{err}"
    );

    // A GGUF cut short names the tensor whose data are missing.
    let gguf = dir.join("cut.gguf");
    let tiny = golden_model("llama-tiny-smollm2");
    let cfg = DecoderConfig::from_hf_file(&tiny.join("config.json")).unwrap();
    write_llama_gguf(&tiny, &cfg, &gguf, GgmlType::F32);
    let bytes = std::fs::read(&gguf).unwrap();
    std::fs::write(&gguf, &bytes[..bytes.len() - 1000]).unwrap();
    let err = gguf_model::load::<B>(&gguf, &dev).unwrap_err().to_string();
    assert!(err.contains("cut.gguf") && err.contains("tensor"), "{err}");
}
