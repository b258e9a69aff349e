use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::conformance::{self, BackendKind, Options, report};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tasks for the CS336 Rust stack")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run golden cases (shared/golden format) through our ops and compare.
    Conformance {
        /// Golden directory holding manifest.json and cases/ [default: $LM_SHARED/golden,
        /// else ../shared/golden].
        #[arg(long)]
        golden: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "ndarray")]
        backend: BackendKind,
        /// Only these ops (or case names); repeatable. Default: every case.
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// Add every op of an assignment (1, 2, 3 or 5) to the filters; repeatable.
        #[arg(long)]
        lab: Vec<u8>,
        /// Multiply every tolerance by this factor (non-IEEE-f32 backends only).
        #[arg(long, default_value_t = 1.0)]
        tol_factor: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.task {
        Task::Conformance {
            golden,
            backend,
            mut filters,
            lab,
            tol_factor,
        } => {
            for n in lab {
                let Some(ops) = conformance::lab_ops(n) else {
                    eprintln!("error: --lab {n}: the golden set has assignments 1, 2, 3 and 5");
                    return ExitCode::from(2);
                };
                filters.extend(ops.iter().map(|s| s.to_string()));
            }
            let golden = golden.unwrap_or_else(conformance::default_golden_dir);
            let opts = Options {
                golden,
                backend,
                filters,
                tol_factor,
            };
            if tol_factor != 1.0 {
                println!("note: tolerances multiplied by {tol_factor}");
            }
            println!("{}", report::header());
            match conformance::run(&opts, &mut |r| println!("{}", report::row(r))) {
                Ok(rep) => {
                    println!("{}", report::summary(&rep));
                    if rep.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
