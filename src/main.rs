//! The `dcmflow` binary: command-line parsing and nothing else. Recipes are parsed and planned
//! by `dcmflow-engine`, stage kinds come from `dcmflow-stages`' registry.
//!
//! Exit codes: 0 every item done; 1 some items failed or were quarantined; 2 the recipe or the
//! setup is wrong (nothing was run).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use dcmflow_engine::recipe::Recipe;
use dcmflow_engine::report::ReportPaths;
use dcmflow_engine::runtime::{run, RunOptions};
use dcmflow_engine::{docs, Plan, Secret};

#[derive(Parser)]
#[command(
    name = "dcmflow",
    version,
    about = "Recipe-driven DICOM de-identification and export"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
}

/// How `run.json` names inputs.
#[derive(Clone, Copy, ValueEnum)]
enum ReportPathsArg {
    /// A keyed hash of each path (HMAC-SHA256 with the project secret, as in the journal; with
    /// a one-run random key when there is no secret).
    Hashed,
    /// Each path as found (for reports that stay with the inputs).
    Plain,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Text,
    Markdown,
}

#[derive(Subcommand)]
enum Command {
    /// Check recipes: every problem is reported with file:line:col; exit 2 when any is found.
    Validate {
        /// Recipe files.
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// Override a param: --set name=value (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
        sets: Vec<(String, String)>,
    },
    /// Print the recipe's stage graph.
    Graph {
        /// Recipe file.
        recipe: PathBuf,
        /// dot (Graphviz) or mermaid.
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
        /// Override a param.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
        sets: Vec<(String, String)>,
    },
    /// List every stage kind with its documented settings.
    Stages {
        /// text or markdown (the README's table).
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Print the JSON Schema of the recipe format.
    Schema,
    /// Check an output tree for leftover PHI, independently of the recipe that made it; exit 1
    /// when anything looks like PHI.
    Verify {
        /// The original inputs (files or folders); their identifying values are searched for.
        #[arg(long = "original")]
        originals: Vec<PathBuf>,
        /// The output folder to check.
        #[arg(long)]
        output: PathBuf,
        /// Write the findings as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write a self-contained HTML review sheet to this file: a thumbnail of every still,
        /// clip (first frame, with ffmpeg) and DICOM file, grouped by patient/study/series,
        /// with retained header values and the findings beside each file.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Print a methods-section paragraph (markdown) for a recipe, with provenance.
    Explain {
        /// Recipe file.
        recipe: PathBuf,
        /// Override a param: --set name=value (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
        sets: Vec<(String, String)>,
    },
    /// Run a recipe over inputs.
    Run {
        /// Recipe file.
        recipe: PathBuf,
        /// Input files, folders, glob patterns or DICOMDIR files (repeatable).
        #[arg(long = "input", short = 'i', required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// Output folder (created if missing; may not be inside an input).
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// Override a param: --set name=value (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
        sets: Vec<(String, String)>,
        /// Worker threads in all (default: the number of cores; each stage has at least one).
        #[arg(long)]
        threads: Option<usize>,
        /// Stop at the first failed or quarantined item.
        #[arg(long)]
        fail_fast: bool,
        /// No progress bars or summary.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Read the project secret from this file (else from DCMFLOW_SECRET).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// Show what would be done, per stage, without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// Continue an interrupted run (killed, disk full, ...) into the same output folder:
        /// inputs that OUT/.dcmflow-journal records as complete, unchanged since and with every
        /// output in place are skipped without being opened; the rest are redone. Files the
        /// interrupted run left with exactly the bytes to be written are kept; temporary files
        /// are removed. Refused (exit 2) when the recipe, the parameters or the secret differ
        /// from the journal's run.
        #[arg(long)]
        resume: bool,
        /// How run.json names inputs (failed, quarantined and skipped ones, and --input): by a
        /// keyed hash of the path (HMAC-SHA256 with the project secret, the names
        /// OUT/.dcmflow-journal uses; without a secret, with a random key made for this run
        /// only), since run.json leaves with the outputs and folder names often carry patient
        /// names; or plain paths, for a report that stays with the inputs. Messages on standard
        /// error name files by path either way.
        #[arg(long, value_enum, default_value = "hashed", value_name = "MODE")]
        report_paths: ReportPathsArg,
    },
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got \"{s}\""))
}

fn load_plan(path: &Path, sets: &[(String, String)]) -> Result<Plan, String> {
    let recipe = Recipe::load(path, sets).map_err(|d| d.to_string())?;
    Plan::build(recipe, dcmflow_stages::registry()).map_err(|d| d.to_string())
}

fn main() -> ExitCode {
    // dicom-rs builds an error (with a captured backtrace when RUST_BACKTRACE is set) at the
    // end of every data set it reads; nothing here prints those backtraces, so do not pay for
    // them. Panics still follow RUST_BACKTRACE. Set before any thread starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { recipes, sets } => {
            let mut bad = false;
            for r in &recipes {
                match load_plan(r, &sets) {
                    Ok(p) => println!("{}: ok ({} stages)", r.display(), p.stages.len()),
                    Err(e) => {
                        eprintln!("{e}");
                        bad = true;
                    }
                }
            }
            if bad {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Graph {
            recipe,
            format,
            sets,
        } => match load_plan(&recipe, &sets) {
            Ok(p) => {
                print!(
                    "{}",
                    match format {
                        GraphFormat::Dot => p.to_dot(),
                        GraphFormat::Mermaid => p.to_mermaid(),
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Stages { format } => {
            let reg = dcmflow_stages::registry();
            print!(
                "{}",
                match format {
                    ListFormat::Text => docs::stages_text(reg),
                    ListFormat::Markdown => docs::stages_markdown(reg),
                }
            );
            ExitCode::SUCCESS
        }
        Command::Verify {
            originals,
            output,
            json,
            report: sheet,
        } => match dcmflow_stages::verify::verify(&originals, &output) {
            Ok(report) => {
                for f in &report.findings {
                    println!(
                        "{}: {}{}{}",
                        f.file,
                        f.kind,
                        f.tag
                            .as_ref()
                            .map(|t| format!(" [{t}]"))
                            .unwrap_or_default(),
                        if f.value.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", f.value)
                        }
                    );
                }
                eprintln!(
                        "dcmflow verify: {} files ({} DICOM) checked against {} identifying values from {} originals: {} finding(s)",
                        report.files_checked,
                        report.dicom_files,
                        report.identifiers,
                        report.originals_read,
                        report.findings.len()
                    );
                if let Some(j) = json {
                    if let Err(e) = std::fs::write(
                        &j,
                        serde_json::to_string_pretty(&report).unwrap_or_default(),
                    ) {
                        eprintln!("dcmflow: cannot write {}: {e}", j.display());
                        return ExitCode::from(2);
                    }
                }
                if let Some(sheet) = sheet {
                    let html = dcmflow_stages::review::review_html(&report, &output);
                    if let Err(e) = std::fs::write(&sheet, html) {
                        eprintln!("dcmflow: cannot write {}: {e}", sheet.display());
                        return ExitCode::from(2);
                    }
                }
                if report.findings.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("dcmflow: {e}");
                ExitCode::from(2)
            }
        },
        Command::Explain { recipe, sets } => match load_plan(&recipe, &sets) {
            Ok(p) => {
                print!("{}", docs::explain(&p));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Schema => {
            let s = docs::recipe_schema(dcmflow_stages::registry());
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Command::Run {
            recipe,
            inputs,
            output,
            sets,
            threads,
            fail_fast,
            quiet,
            secret_file,
            dry_run,
            resume,
            report_paths,
        } => match run_command(
            &recipe,
            inputs,
            output,
            &sets,
            threads,
            fail_fast,
            quiet,
            secret_file,
            dry_run,
            resume,
            report_paths,
        ) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("dcmflow: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Refuse an output folder inside (or equal to) an input folder, and inputs inside the output.
fn check_folders(inputs: &[PathBuf], output: &Path) -> Result<PathBuf, String> {
    for i in inputs {
        if !i.exists() && !i.to_string_lossy().contains(['*', '?', '[']) {
            return Err(format!("input {} does not exist", i.display()));
        }
    }
    std::fs::create_dir_all(output)
        .map_err(|e| format!("cannot create the output folder {}: {e}", output.display()))?;
    let out = std::fs::canonicalize(output)
        .map_err(|e| format!("output folder {}: {e}", output.display()))?;
    for i in inputs {
        let Ok(ci) = std::fs::canonicalize(i) else {
            continue;
        };
        if out.starts_with(&ci) && ci.is_dir() {
            return Err(format!(
                "the output folder {} is inside the input folder {}; choose an output folder outside the inputs",
                output.display(),
                i.display()
            ));
        }
        if ci.starts_with(&out) {
            return Err(format!(
                "the input {} is inside the output folder {}; choose another output folder",
                i.display(),
                output.display()
            ));
        }
    }
    Ok(out)
}

/// The bytes of an environment variable's value as the system holds them: never a lossy
/// conversion (two secrets differing only in bytes that are not UTF-8 would become one key).
#[cfg(unix)]
fn env_bytes(v: &std::ffi::OsStr) -> Result<Vec<u8>, String> {
    use std::os::unix::ffi::OsStrExt;
    Ok(v.as_bytes().to_vec())
}

/// The value of an environment variable as UTF-8, refused when it is not (elsewhere than Unix
/// the system's bytes are not the user's bytes; use --secret-file for a binary secret).
#[cfg(not(unix))]
fn env_bytes(v: &std::ffi::OsStr) -> Result<Vec<u8>, String> {
    v.to_str().map(|s| s.as_bytes().to_vec()).ok_or_else(|| {
        "DCMFLOW_SECRET is not valid Unicode; put the secret in a file and pass --secret-file FILE"
            .to_string()
    })
}

#[allow(clippy::too_many_arguments)]
fn run_command(
    recipe: &Path,
    inputs: Vec<PathBuf>,
    output: PathBuf,
    sets: &[(String, String)],
    threads: Option<usize>,
    fail_fast: bool,
    quiet: bool,
    secret_file: Option<PathBuf>,
    dry_run: bool,
    resume: bool,
    report_paths: ReportPathsArg,
) -> Result<ExitCode, String> {
    let plan = load_plan(recipe, sets)?;
    let output_abs = if dry_run {
        output.clone()
    } else {
        check_folders(&inputs, &output)?
    };

    let mut opts = RunOptions::new(inputs, output_abs.clone());
    let secret = match (&secret_file, std::env::var_os("DCMFLOW_SECRET")) {
        (Some(f), _) => Some((Secret::from_file(f).map_err(|e| e.to_string())?, "file")),
        (None, Some(v)) => Some((
            Secret::from_bytes(&env_bytes(&v)?, "DCMFLOW_SECRET").map_err(|e| e.to_string())?,
            "env",
        )),
        (None, None) => None,
    };
    match secret {
        Some((s, from)) => {
            opts.secret = Some(s);
            opts.secret_source = from.into();
        }
        None if plan.needs_secret() => {
            let ephemeral = matches!(
                plan.recipe.param("ephemeral_secret"),
                Some(dcmflow_engine::recipe::ParamValue::Bool(true))
            );
            if !ephemeral {
                return Err("this recipe derives keyed pseudonyms and needs the project secret: set DCMFLOW_SECRET \
                            or pass --secret-file FILE (or --set ephemeral_secret=true for pseudonyms that match no other run)"
                    .into());
            }
            eprintln!("dcmflow: warning: using a one-run secret; pseudonyms and UIDs will not match any other run");
            opts.secret = Some(Secret::ephemeral());
            opts.secret_source = "ephemeral".into();
        }
        None => {}
    }
    if let Some(t) = threads {
        opts.threads = t.max(1);
    }
    opts.fail_fast = fail_fast;
    opts.quiet = quiet;
    opts.dry_run = dry_run;
    opts.resume = resume;
    opts.report_paths = match report_paths {
        ReportPathsArg::Hashed => ReportPaths::Hashed,
        ReportPathsArg::Plain => ReportPaths::Plain,
    };

    let cancel: Arc<AtomicBool> = opts.cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            eprintln!("dcmflow: stopping now");
            std::process::exit(130);
        }
        eprintln!(
            "dcmflow: stopping: finishing the files in progress (Ctrl-C again to stop at once)"
        );
    });

    let report = run(&plan, &opts)?;
    if dry_run {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let written = report.write_to(&output_abs);
        if !quiet || written.is_err() {
            let failed = report
                .problems
                .iter()
                .filter(|p| p.outcome == "failed")
                .count();
            let quarantined = report.problems.len() - failed;
            eprintln!(
                "dcmflow: {} written, {}{} failed, {} quarantined, {} skipped, {} dropped{}; {}",
                report.outputs,
                if resume {
                    format!(
                        "{} inputs resumed ({} files kept from before), ",
                        report.resumed, report.outputs_before
                    )
                } else {
                    String::new()
                },
                failed,
                quarantined,
                report.stages.values().map(|c| c.skipped).sum::<u64>(),
                report.dropped,
                if report.cancelled {
                    " (stopped early)"
                } else {
                    ""
                },
                match &written {
                    Ok(path) => format!("report {}", path.display()),
                    Err(_) => "report below".into(),
                }
            );
        }
        if let Err(e) = written {
            // The items ran: say what happened even though the report has no room on disk.
            eprintln!(
                "dcmflow: cannot write run.json in {}: {e}; the report follows on standard output",
                output_abs.display()
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            return Ok(ExitCode::from(1));
        }
    }
    Ok(if report.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
