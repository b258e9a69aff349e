//! The alignment loops learn: SFT lowers the response loss (and gradient accumulation
//! matches one big batch), GRPO and expert iteration raise the reward, DPO ranks the chosen
//! response above the rejected one. A tiny random decoder over the lab's character codec.

use burn::backend::{Autodiff, NdArray};
use lm_align::grader::Reward;
use lm_align::policy::TextCodec;
use lm_align::toy::CharCodec;
use lm_align::train::{
    DpoConfig, ExpertIterationConfig, GrpoConfig, LengthNorm, MetricsLog, OptimConfig,
    PreferencePair, Question, SftConfig, TokenPair, expert_iteration, train_dpo, train_grpo,
    train_sft,
};
use lm_core::params::flatten_params;
use lm_core::pretrained::{Architecture, Decoder, DecoderConfig};

type B = Autodiff<NdArray<f32>>;

fn tiny_policy(seed: u64) -> Decoder<B> {
    let config = DecoderConfig {
        arch: Architecture::Llama,
        vocab_size: CharCodec::new().vocab_size(),
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 1,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: 16,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_scaling: None,
        tie_word_embeddings: true,
        attention_bias: false,
        max_position_embeddings: 64,
    };
    Decoder::random(config, seed, &Default::default()).unwrap()
}

fn quiet_log(dir: &tempfile::TempDir, name: &str) -> MetricsLog {
    MetricsLog::create(&dir.path().join(name), true).unwrap()
}

fn ids(text: &str) -> Vec<u32> {
    CharCodec::new().encode(text).unwrap()
}

fn optim(lr: f64) -> OptimConfig {
    OptimConfig {
        lr,
        ..OptimConfig::default()
    }
}

#[test]
fn sft_lowers_the_response_loss_and_writes_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<TokenPair> = ["12+3=15", "4+4=8", "7+2=9", "10+1=11"]
        .iter()
        .map(|s| {
            let (q, a) = s.split_once('=').unwrap();
            TokenPair {
                prompt_ids: ids(&format!("{q}=")),
                response_ids: ids(a),
            }
        })
        .collect();
    let config = SftConfig {
        steps: 40,
        batch_size: 4,
        microbatch_size: 2,
        optim: optim(1e-2),
        ..SftConfig::default()
    };
    let (_, steps) = train_sft(
        tiny_policy(1),
        &data,
        0,
        &config,
        &mut quiet_log(&dir, "sft.jsonl"),
        None,
    )
    .unwrap();
    let (first, last) = (steps[0].loss, steps.last().unwrap().loss);
    assert!(last < 0.3 * first, "loss {first} → {last}");
    assert!(
        steps
            .iter()
            .all(|s| s.grad_norm.is_finite() && s.response_tokens > 0)
    );
    let lines = std::fs::read_to_string(dir.path().join("sft.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 40);
    assert!(lines.lines().next().unwrap().contains("\"grad_norm\""));
}

#[test]
fn gradient_accumulation_matches_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    // Different lengths, so the two microbatches pad differently from the one batch.
    let data: Vec<TokenPair> = ["ab", "abcdef", "xyz", "hello world"]
        .iter()
        .map(|s| TokenPair {
            prompt_ids: ids("> "),
            response_ids: ids(s),
        })
        .collect();
    let run = |micro: usize| {
        let config = SftConfig {
            steps: 1,
            batch_size: 4,
            microbatch_size: micro,
            optim: optim(1e-2),
            ..SftConfig::default()
        };
        let (p, _) = train_sft(
            tiny_policy(2),
            &data,
            0,
            &config,
            &mut quiet_log(&dir, &format!("m{micro}.jsonl")),
            None,
        )
        .unwrap();
        flatten_params(&p)
    };
    let (one, four) = (run(4), run(1));
    let before = flatten_params(&tiny_policy(2));
    let moved = one.iter().zip(&before).filter(|(a, b)| a != b).count();
    assert!(moved > one.len() / 2, "the step must move the weights");
    let worst = one
        .iter()
        .zip(&four)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "accumulated step differs by {worst}");
}

/// Reward 1 when the response starts with a digit (about 10 of the ~100 characters: a
/// random policy earns ~0.1, so groups have variance from the start).
fn digit_first(response: &str, _truth: &str) -> Reward {
    let hit = response.chars().next().is_some_and(|c| c.is_ascii_digit());
    let r = f64::from(u8::from(hit));
    Reward {
        format_reward: 1.0,
        answer_reward: r,
        reward: r,
    }
}

fn digit_questions() -> Vec<Question> {
    ["Q: ", "Say: ", "N? "]
        .iter()
        .map(|p| Question {
            prompt_ids: ids(p),
            ground_truth: String::new(),
        })
        .collect()
}

fn grpo_config(loss_type: &str) -> GrpoConfig {
    GrpoConfig {
        n_grpo_steps: 25,
        rollout_batch_size: 32,
        group_size: 16,
        train_batch_size: 32,
        gradient_accumulation_steps: 2,
        sampling_max_tokens: 2,
        sampling_stop: Vec::new(),
        loss_type: loss_type.into(),
        max_batch_rows: 32,
        eval_every: 0,
        optim: optim(2e-2),
        ..GrpoConfig::default()
    }
}

fn mean_reward(steps: &[lm_align::train::GrpoStep]) -> f64 {
    steps.iter().map(|s| s.reward).sum::<f64>() / steps.len() as f64
}

#[test]
fn grpo_raises_the_reward() {
    let dir = tempfile::tempdir().unwrap();
    let codec = CharCodec::new();
    let config = grpo_config("reinforce_with_baseline");
    let mut evals = Vec::new();
    let mut eval = |_: &Decoder<NdArray<f32>>, step: usize| {
        evals.push(step);
        Ok(0.0)
    };
    let config = GrpoConfig {
        eval_every: 10,
        ..config
    };
    let (_, steps) = train_grpo(
        tiny_policy(3),
        &codec,
        &digit_questions(),
        &digit_first,
        32,
        &config,
        &mut quiet_log(&dir, "grpo.jsonl"),
        Some(&mut eval),
    )
    .unwrap();
    let (early, late) = (mean_reward(&steps[..3]), mean_reward(&steps[22..]));
    assert!(
        late > 0.6 && late > early + 0.3,
        "reward {early:.2} → {late:.2}"
    );
    assert_eq!(evals, vec![10, 20, 25]);
    assert!(
        steps
            .iter()
            .all(|s| s.entropy > 0.0 && s.response_length > 0.0)
    );
    assert!(steps.iter().all(|s| s.clip_fraction == 0.0));
}

#[test]
fn grpo_clip_off_policy_epochs_clip_and_learn() {
    let dir = tempfile::tempdir().unwrap();
    let config = GrpoConfig {
        epochs_per_rollout_batch: 2,
        cliprange: 0.05,
        length_normalization: LengthNorm::MaskedNormalize,
        use_std_normalization: false,
        ..grpo_config("grpo_clip")
    };
    let (_, steps) = train_grpo(
        tiny_policy(4),
        &CharCodec::new(),
        &digit_questions(),
        &digit_first,
        32,
        &config,
        &mut quiet_log(&dir, "clip.jsonl"),
        None,
    )
    .unwrap();
    // The second epoch sees ratios ≠ 1: some tokens must be clipped, never all.
    assert!(steps.iter().any(|s| s.clip_fraction > 0.0));
    assert!(steps.iter().all(|s| s.clip_fraction < 1.0));
    let (early, late) = (mean_reward(&steps[..3]), mean_reward(&steps[22..]));
    assert!(late > early + 0.2, "reward {early:.2} → {late:.2}");
}

#[test]
fn expert_iteration_raises_rollout_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let config = ExpertIterationConfig {
        n_ei_steps: 3,
        questions_per_step: 3,
        samples_per_question: 32,
        sampling_max_tokens: 2,
        sampling_stop: Vec::new(),
        max_batch_rows: 48,
        eval_every: 0,
        sft: SftConfig {
            batch_size: 4,
            microbatch_size: 4,
            optim: optim(1e-2),
            ..SftConfig::default()
        },
        sft_epochs: 3,
        ..ExpertIterationConfig::default()
    };
    let (_, steps) = expert_iteration(
        tiny_policy(5),
        &CharCodec::new(),
        &digit_questions(),
        &digit_first,
        32,
        &config,
        &mut quiet_log(&dir, "ei.jsonl"),
        &mut quiet_log(&dir, "ei-sft.jsonl"),
        None,
    )
    .unwrap();
    assert!(steps[0].kept > 0 && steps[0].sft_steps > 0);
    let (first, last) = (steps[0].rollout_accuracy, steps[2].rollout_accuracy);
    assert!(
        last > first + 0.2,
        "rollout accuracy {first:.2} → {last:.2}"
    );
}

#[test]
fn dpo_prefers_the_chosen_response() {
    let dir = tempfile::tempdir().unwrap();
    let pairs: Vec<PreferencePair> = [
        ("Q1 ", "yes", "no!"),
        ("Q2 ", "good", "bad"),
        ("Q3 ", "ok", "ko"),
    ]
    .iter()
    .map(|(p, c, r)| PreferencePair {
        prompt_ids: ids(p),
        chosen_ids: ids(c),
        rejected_ids: ids(r),
    })
    .collect();
    let config = DpoConfig {
        beta: 0.5,
        steps: 20,
        batch_size: 3,
        microbatch_size: 3,
        optim: optim(1e-2),
        ..DpoConfig::default()
    };
    let (_, steps) = train_dpo(
        tiny_policy(6),
        &pairs,
        0,
        &config,
        &mut quiet_log(&dir, "dpo.jsonl"),
        None,
    )
    .unwrap();
    // Step 1 starts at the reference: loss log 2, margin 0.
    assert!(
        (steps[0].loss - std::f64::consts::LN_2).abs() < 1e-4,
        "{}",
        steps[0].loss
    );
    let last = steps.last().unwrap();
    assert!(last.loss < 0.2, "loss {}", last.loss);
    assert_eq!(last.reward_accuracy, 1.0);
    assert!(last.reward_margin > 1.0);
}

#[test]
fn configs_take_the_course_defaults_and_name_bad_fields() {
    let grpo = GrpoConfig::default();
    assert_eq!(
        (grpo.n_grpo_steps, grpo.rollout_batch_size, grpo.group_size),
        (200, 256, 8)
    );
    assert_eq!(
        (grpo.optim.lr, grpo.optim.betas, grpo.optim.weight_decay),
        (1e-5, (0.9, 0.95), 0.0)
    );
    assert_eq!(grpo.optim.max_grad_norm, 1.0);
    let partial: GrpoConfig = toml::from_str("group_size = 4\n[optim]\nlr = 3e-4\n").unwrap();
    assert_eq!(
        (
            partial.group_size,
            partial.optim.lr,
            partial.rollout_batch_size
        ),
        (4, 3e-4, 256)
    );
    let err = toml::from_str::<GrpoConfig>("group_sise = 4")
        .unwrap_err()
        .to_string();
    assert!(err.contains("group_sise"), "{err}");
    let bad = GrpoConfig {
        loss_type: "ppo".into(),
        ..GrpoConfig::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("ppo"));
    let bad = GrpoConfig {
        rollout_batch_size: 250,
        ..GrpoConfig::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("rollout_batch_size")
    );
}

#[test]
fn padded_scoring_equals_the_unpadded_forward() {
    use burn::tensor::{Int, Tensor, TensorData};
    use lm_align::policy::Policy;
    let policy = tiny_policy(3);
    let device = Default::default();
    // 7 positions (padded to 16 inside) and 60 (padded up to the 64-position limit only).
    for t in [7usize, 60] {
        let values: Vec<i64> = (0..2 * t).map(|i| (i * 7 % 90) as i64 + 1).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(values.clone(), [2, t]), &device);
        let positions: Vec<i64> = (0..2).flat_map(|_| 0..t as i64).collect();
        let positions = Tensor::<B, 2, Int>::from_data(TensorData::new(positions, [2, t]), &device);
        let direct = policy.forward(ids.clone(), positions, None).unwrap();
        let scored = policy.sequence_logits(ids).unwrap();
        assert_eq!(scored.dims(), direct.dims());
        let diff: f32 = (scored - direct).abs().max().into_scalar();
        assert!(diff < 1e-5, "t = {t}: logits differ by {diff}");
    }
}
