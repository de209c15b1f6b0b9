//! `flammable`: the run record from any folder, without building a task: `runs`, `show`,
//! `diff`, `checkout`, `rerun`, `rm`, `gc`, and the experiment browser, `ui`.

use clap::Parser;
use flammable_core::cli::runs::{execute, RunCommand};
use flammable_core::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

/// The record of Flammable runs: list, show, compare, check out, re-run and browse them.
#[derive(Parser)]
#[command(name = "flammable", version)]
struct Cli {
    /// The run store (default: $FLAMMABLE_STORE, else .flammable/ at the repository root).
    #[arg(long, global = true)]
    store: Option<PathBuf>,
    /// Print only results.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: RunCommand,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Under `git bisect run`, any code from 1 to 127 but 125 means "bad commit": a
            // mistyped judge must stop the bisect (128) instead.
            let judging = std::env::args().any(|a| a == "bisect-check");
            return match (e.use_stderr(), judging) {
                (true, true) => ExitCode::from(128),
                (true, false) => ExitCode::from(2),
                (false, _) => ExitCode::SUCCESS,
            };
        }
    };
    flammable_core::cli::report(
        Store::locate(cli.store.as_deref())
            .map_err(flammable_core::Error::from)
            .and_then(|store| execute(cli.command, &store, cli.quiet)),
    )
}
