//! `export tensorboard` and `export parquet`: real runs exported, then read back by the tools
//! users read them with: TensorBoard's own reader (the `tensorboard` package from PyPI: its
//! event accumulator, and its hparams plugin's messages), and pyarrow.

use crate::common::{assert_one_line_error, flammable_bin, python_json, wait_for, Sandbox};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

pub(crate) fn flammable(dir: &Path, args: &[&str]) -> Output {
    Command::new(flammable_bin())
        .args(args)
        .current_dir(dir)
        .env("FLAMMABLE_STORE", dir.join("store"))
        .output()
        .unwrap()
}

pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    let out = flammable(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every run folder of `dir` as TensorBoard reads it: `{run: {"files": n, "scalars": {tag:
/// [[step, wall_time, value]…]}, "text": {tag: text}, "start": {…}, "end": {…}}}`; `None`
/// where the `tensorboard` package is not installed.
fn read_with_tensorboard(dir: &Path) -> Option<Value> {
    let script = r#"
import json, os, sys
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2
from google.protobuf import json_format

out = {}
top = sys.argv[1]
for run in sorted(os.listdir(top)):
    path = os.path.join(top, run)
    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    got = {"files": len([f for f in os.listdir(path) if "tfevents" in f]), "scalars": {}, "text": {}}
    for tag in tags["scalars"]:
        got["scalars"][tag] = [[e.step, e.wall_time, e.value] for e in acc.Scalars(tag)]
    for tag in acc.PluginTagToContent("text"):
        [event] = acc.Tensors(tag)
        got["text"][tag] = event.tensor_proto.string_val[0].decode()
    for tag, content in acc.PluginTagToContent("hparams").items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        kind = data.WhichOneof("data")
        got[{"session_start_info": "start", "session_end_info": "end"}[kind]] = json_format.MessageToDict(
            getattr(data, kind), preserving_proto_field_name=True)
    out[run] = got
print(json.dumps(out))
"#;
    python_json(
        "import tensorboard.backend.event_processing.event_accumulator",
        "tensorboard (pip install tensorboard)",
        script,
        &[dir.to_str().unwrap()],
    )
}

/// The run's points as its metrics file holds them: (name, step, value, time).
pub(crate) fn points(dir: &Path, id: &str) -> Vec<(String, u64, f64, f64)> {
    let store = flammable_core::store::Store::at(dir.join("store"));
    flammable_core::store::metrics::read_metrics(&store.metrics_path(id))
        .unwrap()
        .into_iter()
        .map(|p| (p.name.to_string(), p.step, p.value, p.time))
        .collect()
}

/// Asserts that TensorBoard read every point of run `id`, at its step and time, with its
/// value as a 32-bit float (TensorBoard's scalars).
fn assert_scalars(dir: &Path, id: &str, run: &Value) {
    let points = points(dir, id);
    assert!(!points.is_empty());
    let mut seen = 0;
    for (name, step, value, time) in &points {
        let series = run["scalars"][name.as_str()].as_array().unwrap_or_else(|| {
            panic!("no series {name} in {run}");
        });
        let found = series.iter().any(|p| {
            p[0].as_u64() == Some(*step)
                && (p[1].as_f64().unwrap() - time).abs() < 1e-6
                && p[2].as_f64().unwrap() == f64::from(*value as f32)
        });
        assert!(found, "{name} at step {step} = {value}");
        seen += 1;
    }
    let written: usize = run["scalars"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(tag, _)| points.iter().any(|p| &p.0 == *tag))
        .map(|(_, s)| s.as_array().unwrap().len())
        .sum();
    assert_eq!(written, seen, "no point twice, none invented");
}

/// A one-epoch train run of digits in `s` with the flags `args`; its id.
pub(crate) fn train_one_epoch(s: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["train", "-q", "--epochs", "1"];
    all.extend_from_slice(args);
    s.ok("digits", &all);
    s.store().ids().unwrap().last().unwrap().clone()
}

#[test]
fn runs_exported_for_tensorboard_read_back_with_tensorboards_reader() {
    let s = Sandbox::repo();
    let train = |args: &[&str]| train_one_epoch(&s, args);
    let a = train(&["--seed", "1", "--lr", "0.05", "-m", "baseline"]);
    let b = train(&["--seed", "2", "--lr", "0.05"]);
    std::fs::write(s.path().join("model.rs"), "// version 1\n// wider layer\n").unwrap();
    let c = train(&["--seed", "1", "--lr", "0.2", "-m", "wider\nlayer's"]);
    ok(
        s.path(),
        &["edit", &a, "--tag", "best,baseline", "--note", "kept"],
    );
    let out_dir = s.path().join("tb");
    let out = flammable(
        s.path(),
        &["export", "tensorboard", out_dir.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 3 runs"));
    // Exports into one folder at once leave each run an event file: each export removes
    // only the older files of earlier ones, not another's newer one.
    let dir = out_dir.to_str().unwrap();
    for _ in 0..4 {
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| ok(s.path(), &["-q", "export", "tensorboard", dir]));
            }
        });
        for id in [&a, &b, &c] {
            let files = std::fs::read_dir(out_dir.join(id))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("events.out.tfevents.")
                })
                .count();
            assert!(files >= 1, "run {id} lost its event file");
        }
    }
    // Again, with a selection: the runs' files are replaced, never doubled.
    ok(
        s.path(),
        &[
            "export",
            "tensorboard",
            out_dir.to_str().unwrap(),
            &a,
            &b,
            &c,
        ],
    );
    let Some(read) = read_with_tensorboard(&out_dir) else {
        return;
    };
    for id in [&a, &b, &c] {
        let run = &read[id.as_str()];
        assert_eq!(run["files"], 1, "{run}");
        assert_scalars(s.path(), id, run);
        assert_eq!(run["end"]["status"], "STATUS_SUCCESS", "{run}");
        let record = s.store().read(id).unwrap();
        assert_eq!(
            run["start"]["hparams"]["lr"],
            if id == &c { 0.2 } else { 0.05 },
            "{run}"
        );
        assert!(run["start"]["hparams"].get("seed").is_none(), "{run}");
        // An option left unset has no value (digits sets no gradient clipping).
        assert!(
            run["start"]["hparams"].get("clip_grad_norm").is_none(),
            "{run}"
        );
        // The command line as a Markdown code block: every line of it indented.
        let command = run["text"]["run/command"].as_str().unwrap();
        let block = command.split("\n\n").next().unwrap();
        assert!(block.lines().all(|l| l.starts_with("    ")), "{command}");
        assert!(
            run["text"]["run/command"]
                .as_str()
                .unwrap()
                .contains(&format!("seed {}", record.seed)),
            "{run}"
        );
    }
    // Runs that differ only by seed are one group; another learning rate is another.
    let group = |id: &str| read[id]["start"]["group_name"].clone();
    assert_eq!(group(&a), group(&b));
    assert_ne!(group(&a), group(&c));
    assert_eq!(read[a.as_str()]["text"]["run/message"], "baseline");
    assert_eq!(read[a.as_str()]["text"]["run/tags"], "baseline best");
    assert_eq!(read[a.as_str()]["text"]["run/note"], "kept");
    assert_eq!(read[c.as_str()]["text"]["run/message"], "wider\nlayer's");
    assert!(read[c.as_str()]["text"]["run/command"]
        .as_str()
        .unwrap()
        .contains(r"'wider"));
    let diff = read[c.as_str()]["text"]["run/code_diff"].as_str().unwrap();
    assert!(
        diff.contains("+// wider layer") && diff.contains("model.rs"),
        "{diff}"
    );
    assert!(read[a.as_str()]["text"]["run/code_diff"]
        .as_str()
        .unwrap()
        .contains("No uncommitted changes"));

    // A filter as in the browser; mistakes get one line.
    let only = s.path().join("tb-only");
    ok(
        s.path(),
        &[
            "export",
            "tensorboard",
            only.to_str().unwrap(),
            "--filter",
            "lr>0.1",
        ],
    );
    let names: Vec<String> = std::fs::read_dir(&only)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, std::slice::from_ref(&c));
    let out = flammable(
        s.path(),
        &[
            "export",
            "tensorboard",
            only.to_str().unwrap(),
            "--filter",
            "nosuch<1",
        ],
    );
    assert_one_line_error(&out, 2, &["nosuch"]);
    let out = flammable(s.path(), &["export", "tensorboard", "x", "no-such-run"]);
    assert_one_line_error(&out, 2, &["no-such-run"]);
    // Never into the store, where it would write into runs' folders.
    for inside in ["store", "store/runs", "store/new/../runs"] {
        for format in ["tensorboard", "parquet"] {
            let out = flammable(s.path(), &["export", format, inside]);
            assert_one_line_error(&out, 2, &["inside the store"]);
        }
    }
    assert!(!s.path().join("store/new").exists());
    // A run whose record cannot be read is said, not silently left out.
    std::fs::write(
        s.path().join("store/runs").join(&a).join("record.ron"),
        "(((",
    )
    .unwrap();
    let out = flammable(
        s.path(),
        &["export", "parquet", s.path().join("pq").to_str().unwrap()],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "warning: run {a} cannot be read, and is not exported"
        )),
        "{said}"
    );
}

#[test]
fn follow_writes_a_running_runs_points_until_it_ends() {
    let s = Sandbox::repo();
    let mut child = s
        .command("digits")
        .args(["train", "-q", "--epochs", "6", "--seed", "5"])
        .spawn()
        .unwrap();
    wait_for(120, "the run to start", || {
        s.store().ids().is_ok_and(|ids| !ids.is_empty())
    });
    let id = s.store().ids().unwrap()[0].clone();
    let out_dir = s.path().join("live");
    let follower = Command::new(flammable_bin())
        .args(["export", "tensorboard", out_dir.to_str().unwrap(), &id])
        .arg("--follow")
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // An export of the same run into the same folder while it is followed replaces the
    // follower's file: the follower writes the run whole again and follows on.
    wait_for(120, "the follower's file", || {
        std::fs::read_dir(out_dir.join(&id)).is_ok_and(|mut d| d.next().is_some())
    });
    ok(
        s.path(),
        &["export", "tensorboard", out_dir.to_str().unwrap(), &id],
    );
    let out = follower.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("following 1 running run"), "{said}");
    assert!(child.wait().unwrap().success());
    let Some(read) = read_with_tensorboard(&out_dir) else {
        return;
    };
    let run = &read[id.as_str()];
    assert_scalars(s.path(), &id, run);
    assert_eq!(run["end"]["status"], "STATUS_SUCCESS", "{run}");
}

/// The tables at `dir` as pyarrow reads them: `{"runs": [row…], "metrics": [row…], "types":
/// {column: type}}`, from Parquet or (`csv`) CSV; `None` where pyarrow is not installed.
fn read_with_pyarrow(dir: &Path, csv: bool) -> Option<Value> {
    let script = r#"
import json, sys
import pyarrow.csv, pyarrow.parquet
top, csv = sys.argv[1], sys.argv[2] == "csv"
read = (lambda n: pyarrow.csv.read_csv(f"{top}/{n}.csv")) if csv else (lambda n: pyarrow.parquet.read_table(f"{top}/{n}.parquet"))
runs, metrics = read("runs"), read("metrics")
print(json.dumps({"runs": runs.to_pylist(), "metrics": metrics.to_pylist(),
                  "types": {f.name: str(f.type) for f in runs.schema}}, default=str))
"#;
    python_json(
        "import pyarrow.parquet, pyarrow.csv",
        "pyarrow (pip install pyarrow)",
        script,
        &[dir.to_str().unwrap(), if csv { "csv" } else { "parquet" }],
    )
}

#[test]
fn runs_exported_as_parquet_and_csv_read_back_with_pyarrow() {
    let s = Sandbox::repo();
    s.ok(
        "digits",
        &[
            "train",
            "-q",
            "--epochs",
            "1",
            "--seed",
            "3",
            "-m",
            "a, \"quoted\" message",
        ],
    );
    s.ok(
        "digits",
        &[
            "train",
            "-q",
            "--epochs",
            "1",
            "--lr",
            "0.2",
            "--split-seed",
            "18446744073709551615",
        ],
    );
    let ids = s.store().ids().unwrap();
    ok(
        s.path(),
        &["edit", &ids[0], "--tag", "best", "--note", "a note"],
    );
    for csv in [false, true] {
        let dir = s.path().join(if csv { "csv" } else { "parquet" });
        let mut args = vec!["export", "parquet", dir.to_str().unwrap()];
        if csv {
            args.push("--csv");
        }
        let out = flammable(s.path(), &args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.contains("exported 2 runs"),
            "{said}"
        );
        let Some(read) = read_with_pyarrow(&dir, csv) else {
            return;
        };
        let runs = read["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        for (row, id) in runs.iter().zip(&ids) {
            let record = s.store().read(id).unwrap();
            assert_eq!(row["id"], id.as_str());
            assert_eq!(row["status"], "finished");
            if csv {
                // CSV has no types: pyarrow guesses a double for seeds beyond i64.
                assert_eq!(row["seed"].as_f64(), Some(record.seed as f64));
            } else {
                assert_eq!(row["seed"], record.seed);
            }
            for (name, value) in record.all_metrics() {
                assert_eq!(row[format!("metrics.{name}")], value, "{name}");
            }
        }
        assert_eq!(runs[0]["message"], "a, \"quoted\" message");
        assert_eq!(
            (&runs[0]["tags"], &runs[0]["note"]),
            (&"best".into(), &"a note".into())
        );
        // (CSV cannot tell an absent text from an empty one.)
        let absent = |v: &Value| v.is_null() || (csv && v == "");
        assert!(
            absent(&runs[1]["tags"]) && absent(&runs[1]["note"]),
            "{}",
            runs[1]
        );
        assert_eq!(runs[1]["params.lr"], 0.2);
        // An option left unset is a null, not the text "None".
        assert!(runs[0]["params.clip_grad_norm"].is_null(), "{}", runs[0]);
        if !csv {
            assert_eq!(read["types"]["params.lr"], "double");
            assert_eq!(read["types"]["seed"], "uint64");
            // Whole numbers stay whole, exactly: beyond 2^53 too.
            assert_eq!(read["types"]["params.epochs"], "int64");
            assert_eq!(read["types"]["params.split_seed"], "uint64");
            assert_eq!(runs[1]["params.split_seed"], u64::MAX);
        }
        // Every point, in long form, bit for bit.
        let metrics = read["metrics"].as_array().unwrap();
        let mut want = Vec::new();
        for id in &ids {
            for (name, step, value, time) in points(s.path(), id) {
                want.push((id.clone(), name, step, value, time));
            }
        }
        assert_eq!(metrics.len(), want.len());
        for (row, (id, name, step, value, time)) in metrics.iter().zip(&want) {
            assert_eq!(row["run"], id.as_str());
            assert_eq!(row["name"], name.as_str());
            assert_eq!(row["step"], *step);
            assert_eq!(row["value"].as_f64().unwrap(), *value, "{row}");
            assert_eq!(row["time"].as_f64().unwrap(), *time, "{row}");
        }
    }
    // A damaged hyperparameters file: the run is exported without them, and a warning says so
    // (its parameters would otherwise read as options left unset).
    let damaged = s.store().run_dir(&ids[1]).join("hyperparameters.ron");
    std::fs::write(&damaged, "(train: (lr: 0.2, ep").unwrap();
    for kind in ["parquet", "tensorboard"] {
        let dir = s.path().join(format!("damaged-{kind}"));
        let out = flammable(s.path(), &["export", kind, dir.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}");
        let warnings: Vec<&str> = said.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(warnings.len(), 1, "{said}");
        assert!(
            warnings[0].contains(&ids[1]) && warnings[0].contains("cannot be read"),
            "{said}"
        );
    }
}
