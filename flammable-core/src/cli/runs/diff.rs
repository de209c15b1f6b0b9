//! `diff`: two runs' hyperparameters, metrics and code.

use super::*;
use crate::util::number::metric_text;

pub(super) fn diff(
    store: &Store,
    a: &str,
    b: &str,
    stat: bool,
    code_only: bool,
) -> Result<ExitCode> {
    let (ra, rb) = (store.resolve(a, |_| true)?, store.resolve(b, |_| true)?);
    outln!("run {} → run {}", ra.id, rb.id);
    // Runs of other experiments or kinds compare as far as they have the same things.
    if ra.experiment != rb.experiment {
        outln!("  experiment: {} → {}", ra.experiment, rb.experiment);
    }
    if ra.kind != rb.kind {
        outln!("  kind: {} → {}", ra.kind, rb.kind);
    }
    if !code_only {
        let (ha, hb) = (
            hyperparameters(store, &ra.id),
            hyperparameters(store, &rb.id),
        );
        let keys: std::collections::BTreeSet<&String> = ha.keys().chain(hb.keys()).collect();
        let mut changed: Vec<String> = keys
            .into_iter()
            .filter(|k| ha.get(*k) != hb.get(*k))
            .map(|k| {
                let v =
                    |m: &BTreeMap<String, String>| m.get(k).cloned().unwrap_or_else(|| "-".into());
                format!("  {k}: {} → {}", v(&ha), v(&hb))
            })
            .collect();
        // The processes that trained it (`mpiexec -n N`) are no hyperparameter, yet change
        // what a step is: each process's `--batch-size` examples, times their number.
        if ra.processes() != rb.processes() {
            let step = |r: &Record, h: &BTreeMap<String, String>| match &r.distributed {
                Some(d) => d.global_batch.to_string(),
                None => h.get("batch_size").cloned().unwrap_or_else(|| "-".into()),
            };
            changed.push(format!(
                "  processes: {} → {} (examples a step: {} → {})",
                ra.processes(),
                rb.processes(),
                step(&ra, &ha),
                step(&rb, &hb)
            ));
        }
        outln!(
            "\nhyperparameters{}",
            if changed.is_empty() { ": same" } else { "" }
        );
        for c in changed {
            outln!("{c}");
        }
        let (ma, mb) = (ra.all_metrics(), rb.all_metrics());
        let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        outln!("\nmetrics");
        for k in keys {
            let v = |m: &BTreeMap<String, f64>| {
                m.get(k).map_or_else(|| "-".into(), |v| metric_text(*v))
            };
            let delta = match (ma.get(k), mb.get(k)) {
                (Some(x), Some(y)) => format!("  ({:+.4})", y - x),
                _ => String::new(),
            };
            outln!("  {k}: {} → {}{delta}", v(&ma), v(&mb));
        }
    }
    let (sa, sb) = (snapshot_of(&ra)?, snapshot_of(&rb)?);
    let changes = snapshot::diff(&sb.git_dir, Some(&sa.commit), &sb.commit, !stat)?;
    outln!(
        "\ncode: {} → {}, {} file(s) changed",
        short_commit(&sa.commit),
        short_commit(&sb.commit),
        changes.len()
    );
    for c in changes {
        if stat {
            // Escaped as `show` writes them: a name's line break or escape sequence would
            // otherwise reach the terminal.
            outln!(
                "  {} {}",
                mark(c.kind),
                crate::util::printable::printable(&c.path)
            );
        } else {
            print!("{}", c.patch);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Flattened hyperparameters of a run; a warning when its file is there but cannot be read
/// (damaged), rather than values compared as missing in silence.
pub(super) fn hyperparameters(store: &Store, id: &str) -> BTreeMap<String, String> {
    let path = store.run_dir(id).join(HYPERPARAMETERS_FILE);
    crate::hyper::read_flat_warned(&path, id, "its hyperparameters are shown as missing")
}
