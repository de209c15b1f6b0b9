//! Start-up and build cost of a task binary against a hand-written candle program that does
//! the same (`examples/plain_digits.rs`: the digits task with clap, no Flammable): the wall
//! time of `--help`; the rebuild after touching each one's source file; the time rustc spends
//! expanding macros in each (`-Z time-passes`, through `RUSTC_BOOTSTRAP=1` on a stable
//! compiler). Builds use the release profile (`--smoke`: the dev profile, tiny repetitions).
//!
//! `cargo run --release -p flammable-bench --bin build_cost [-- --smoke]`

use flammable_bench::{interleave, table, Samples};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TASK: &str = "digits";
const BASELINE: &str = "plain_digits";

struct Workspace {
    root: PathBuf,
    cargo: String,
    profile: &'static str,
}

impl Workspace {
    fn cargo(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.cargo);
        c.current_dir(&self.root)
            .args(args)
            .args(["--quiet", "--profile", self.profile]);
        c
    }

    /// Brings the examples up to date. Cargo unifies the dependencies' features over the
    /// packages it is asked to build, so each profile uses the selection that its other
    /// builds use, and shares their dependencies: in the dev profile the integration tests',
    /// in release the examples alone (as `cargo rustc` below must).
    fn build(&self, example: &str) {
        let selection: &[&str] = if self.profile == "dev" {
            &[
                "build",
                "-p",
                "flammable-examples",
                "--features",
                "flammable-examples/mpi",
                "--examples",
                "-p",
                "flammable-cli",
                "--features",
                "flammable-cli/s3",
                "--bins",
            ]
        } else {
            &["build", "-p", "flammable-examples", "--examples"]
        };
        let ok = self.cargo(selection).status().is_ok_and(|s| s.success());
        assert!(ok, "cannot build example {example}");
    }

    fn target(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("target"))
    }

    fn binary(&self, example: &str) -> PathBuf {
        let dir = if self.profile == "dev" {
            "debug"
        } else {
            self.profile
        };
        self.target().join(dir).join("examples").join(example)
    }

    fn source(&self, example: &str) -> PathBuf {
        self.root.join("examples").join(format!("{example}.rs"))
    }

    /// Touches the example's source and rebuilds it.
    fn rebuild(&self, example: &str) {
        let touched = std::fs::File::options()
            .append(true)
            .open(self.source(example))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        assert!(touched.is_ok(), "cannot touch {example}.rs");
        self.build(example);
    }

    /// Seconds rustc spent expanding macros in `example`, and compiling it in all, as
    /// `-Z time-passes` reports them; `None` where this compiler does not.
    fn expansion(&self, example: &str) -> Option<(Duration, Duration)> {
        // A target folder of its own: RUSTC_BOOTSTRAP changes cargo's fingerprint of every
        // unit, which would evict the normal build's dependencies (the first run builds them
        // there once).
        let out = self
            .cargo(&["rustc", "-p", "flammable-examples", "--example", example])
            .args(["--", "-Ztime-passes"])
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", self.target().join("bench-time-passes"))
            .stdout(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let pass = |name: &str| {
            text.lines()
                .filter(|l| l.trim_end().ends_with(name))
                .find_map(|l| {
                    l.strip_prefix("time:")?
                        .split(';')
                        .next()?
                        .trim()
                        .parse()
                        .ok()
                })
                .map(Duration::from_secs_f64)
        };
        Some((pass("\tmacro_expand_crate")?, pass("\ttotal")?))
    }
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (help_reps, build_reps) = if smoke { (2, 1) } else { (30, 5) };
    let ws = Workspace {
        root: flammable_bench::bench_dir()
            .parent()
            .map(Path::to_path_buf)
            .expect("bench/ is in the workspace"),
        cargo: std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        profile: if smoke { "dev" } else { "release" },
    };
    ws.build(TASK);
    let mut out = String::new();

    let help = |example: &str| {
        let ok = Command::new(ws.binary(example))
            .arg("--help")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{example} --help failed");
    };
    let results = interleave(
        help_reps,
        &mut [
            (
                "hand-written candle program (`plain_digits --help`)",
                &mut || help(BASELINE),
            ),
            ("Flammable task (`digits --help`)", &mut || help(TASK)),
        ],
    );
    out.push_str(&table(
        &format!(
            "Start-up: `--help`, wall time of the process ({} profile)",
            ws.profile
        ),
        &results,
    ));
    out.push('\n');

    let results = interleave(
        build_reps,
        &mut [
            ("hand-written candle program (plain_digits.rs)", &mut || {
                ws.rebuild(BASELINE)
            }),
            ("Flammable task (digits.rs)", &mut || ws.rebuild(TASK)),
        ],
    );
    out.push_str(&table(
        &format!(
            "Rebuild after touching the source file (cargo build, {} profile)",
            ws.profile
        ),
        &results,
    ));
    out.push('\n');

    if smoke {
        // The expansion needs a build of every dependency in a target folder of its own:
        // minutes, not a smoke test's seconds.
        out.push_str("### Macro expansion\n\nnot measured in smoke mode\n");
        flammable_bench::report("build_cost", &out, smoke);
        return;
    }
    // Macro expansion, as rustc measures it: its own pass, so interleaving matters less;
    // still A B A B.
    let mut expand: Vec<(String, Samples, Samples)> = [BASELINE, TASK]
        .iter()
        .map(|e| (e.to_string(), Samples::default(), Samples::default()))
        .collect();
    for _ in 0..build_reps.max(3) {
        for (example, macros, total) in expand.iter_mut() {
            if let Some((m, t)) = ws.expansion(example) {
                macros.0.push(m);
                total.0.push(t);
            }
        }
    }
    out.push_str(&format!(
        "### Macro expansion (rustc -Z time-passes, {} profile, median of {})\n\n\
         | program | macro expansion | whole compile of the crate | expansion share |\n\
         | --- | --- | --- | --- |\n",
        ws.profile,
        build_reps.max(3)
    ));
    for (example, macros, total) in &expand {
        if macros.0.is_empty() {
            out.push_str(&format!("| {example} | not reported by this rustc | | |\n"));
            continue;
        }
        let (m, t) = (macros.median().as_secs_f64(), total.median().as_secs_f64());
        out.push_str(&format!(
            "| {example} | {:.0} ms | {:.0} ms | {:.1}% |\n",
            m * 1e3,
            t * 1e3,
            100.0 * m / t.max(1e-9)
        ));
    }
    out.push_str(
        "\nMacro expansion covers every macro of the crate: `#[flammable::task]` and the serde and \
         clap derives in digits.rs; clap's derive in plain_digits.rs.\n",
    );
    flammable_bench::report("build_cost", &out, smoke);
}
