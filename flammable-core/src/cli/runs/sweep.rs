//! `runs --sweep ID`: the runs of one sweep ranked by their metric, with the hyperparameters
//! that differ between them as columns. `train --sweep` prints the same table when it ends.

use super::*;
use crate::util::number::metric_text;

/// The metric a sweep's runs are ranked by, and whether larger is better: the best
/// validation value kept by `--best-metric` (`best/val/<metric>`) when the runs have one,
/// else their last test's first metric, else the final training loss.
fn rank_metric(records: &[Record]) -> Option<(String, bool)> {
    let has = |key: &str| records.iter().any(|r| r.metrics.contains_key(key));
    let best = records
        .iter()
        .flat_map(|r| r.metrics.keys())
        .find(|k| k.starts_with("best/val/"))
        .cloned();
    let key = best
        .or_else(|| {
            records
                .iter()
                .find_map(|r| r.tests.last())
                .and_then(|t| t.metrics.keys().next())
                .map(|k| format!("test/{k}"))
        })
        .or_else(|| has("loss").then(|| "loss".to_string()))
        .or_else(|| {
            records
                .iter()
                .flat_map(|r| r.metrics.keys())
                .next()
                .cloned()
        })?;
    let bare = key.rsplit('/').next().unwrap_or(&key);
    let max = crate::hyper::config::BestMode::guess(bare) == crate::hyper::config::BestMode::Max;
    Some((key, max))
}

/// The value of `key` for run `r` (`test/<m>`: its last test's).
fn value_of(r: &Record, key: &str) -> Option<f64> {
    match key.strip_prefix("test/") {
        Some(m) => r.tests.last().and_then(|t| t.metrics.get(m)).copied(),
        None => r.metrics.get(key).copied(),
    }
}

/// The table of sweep `id`: a header and one row per run, best first (runs without the
/// metric last).
pub fn sweep_table(store: &Store, id: &str) -> Result<SweepTable> {
    let records: Vec<Record> = store
        .records()?
        .into_iter()
        .filter(|r| r.sweep.as_deref() == Some(id))
        .collect();
    if records.is_empty() {
        return Err(Error::usage(format!(
            "no run of sweep `{id}` in {}",
            store.root().display()
        )));
    }
    let hyper: Vec<BTreeMap<String, String>> = records
        .iter()
        .map(|r| crate::hyper::read_flat(&store.run_dir(&r.id).join(HYPERPARAMETERS_FILE)))
        .collect();
    let mut names: Vec<&String> = hyper.iter().flat_map(|h| h.keys()).collect();
    names.sort();
    names.dedup();
    let differing: Vec<String> = names
        .into_iter()
        .filter(|n| hyper.iter().any(|h| h.get(*n) != hyper[0].get(*n)))
        .cloned()
        .collect();
    let metric = rank_metric(&records);
    let mut order: Vec<usize> = (0..records.len()).collect();
    if let Some((key, max)) = &metric {
        order.sort_by(|&a, &b| {
            let (va, vb) = (value_of(&records[a], key), value_of(&records[b], key));
            match (va, vb) {
                (Some(x), Some(y)) if *max => y.total_cmp(&x),
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => records[a].id.cmp(&records[b].id),
            }
        });
    }
    let mut header: Vec<String> = vec!["rank".into(), "id".into(), "status".into()];
    header.extend(differing.iter().cloned());
    // The seed is no hyperparameter, but a sweep over it (`--sweep seed=1,2,3`) is told
    // apart by it alone.
    let seeds_differ = records.iter().any(|r| r.seed != records[0].seed);
    if seeds_differ {
        header.push("seed".into());
    }
    if let Some((key, max)) = &metric {
        header.push(format!("{key} ({})", if *max { "max" } else { "min" }));
    }
    let rows = order
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let r = &records[i];
            let mut row = vec![(rank + 1).to_string(), r.id.clone(), r.status.to_string()];
            row.extend(
                differing
                    .iter()
                    .map(|n| hyper[i].get(n).cloned().unwrap_or_else(|| "-".into())),
            );
            if seeds_differ {
                row.push(r.seed.to_string());
            }
            if let Some((key, _)) = &metric {
                row.push(value_of(r, key).map_or_else(|| "-".into(), metric_text));
            }
            row
        })
        .collect();
    Ok(SweepTable {
        header,
        rows,
        note: split_note(&records),
    })
}

/// A sweep's ranking: the header, a row per run, and a note when its runs were validated on
/// different data.
pub struct SweepTable {
    /// The column names.
    pub header: Vec<String>,
    /// One row per run, best first.
    pub rows: Vec<Vec<String>>,
    /// See [`split_note`].
    pub note: Option<String>,
}

/// Prints sweep `id`'s table.
pub fn print_sweep(store: &Store, id: &str) -> Result<ExitCode> {
    let table = sweep_table(store, id)?;
    print_table(&table.header, &table.rows)?;
    if let Some(note) = table.note {
        crate::util::stderr::errln!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `runs --sweep ID`: the table, then what the sweep left to do when its plan is in the store
/// (a sweep stopped, or killed): the combinations not started, the runs stopped, and the
/// command that continues it.
pub fn list_sweep(store: &Store, id: &str) -> Result<ExitCode> {
    let plan = crate::store::sweeps::read(store, id)?;
    match sweep_table(store, id) {
        Ok(table) => {
            print_table(&table.header, &table.rows)?;
            if let Some(note) = table.note {
                crate::util::stderr::errln!("{note}");
            }
        }
        // Killed before its first run started: what is left says it all.
        Err(_) if plan.is_some() => {}
        Err(e) => return Err(e),
    }
    let Some(plan) = plan else {
        return Ok(ExitCode::SUCCESS);
    };
    let runs = crate::store::sweeps::runs(store, id);
    let left: Vec<String> = plan
        .settings
        .iter()
        .enumerate()
        .filter(|(trial, _)| !runs.contains_key(trial))
        .map(|(_, settings)| {
            settings
                .iter()
                .map(|(f, v)| format!("{f}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let stopped = runs
        .values()
        .filter(|r| matches!(r.status, RunStatus::Interrupted | RunStatus::Crashed))
        .count();
    if !left.is_empty() || stopped > 0 {
        let mut line = format!(
            "sweep {id}: {stopped} run(s) stopped, {} not started",
            left.len()
        );
        if !left.is_empty() {
            line.push_str(&format!(" ({})", left.join("; ")));
        }
        line.push_str(&format!(
            "; `train --resume {id}` of {} continues it",
            plan.experiment
        ));
        crate::util::stderr::errln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
