//! `show` and `metrics`: one run's record, hyperparameters, metrics, files and code.
//!
//! Text that comes from outside flammable — file names above all, messages, errors — is
//! printed with its control characters escaped (`\u{1b}`), so that a name holding terminal
//! escape sequences cannot rewrite the screen.

use super::*;
use crate::store::hashes::HASHES_FILE;
use crate::util::number::metric_text;

pub(super) use crate::util::printable::{is_hidden_control, printable};

pub(super) fn show(store: &Store, spec: &str, json: bool) -> Result<ExitCode> {
    let r = store.resolve(spec, |_| true)?;
    if json {
        outln!("{}", to_json(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let dir = store.run_dir(&r.id);
    outln!("run         {}", r.id);
    outln!("experiment  {}", r.experiment);
    outln!("kind        {}", r.kind);
    outln!("status      {}", r.status);
    if let Some(p) = &r.parent {
        match &r.checkpoint {
            Some(c) => outln!("parent      {p}, checkpoint {c}"),
            None => outln!("parent      {p}"),
        }
    }
    if let Some(p) = &r.rerun_of {
        outln!("rerun of    {p}");
    }
    if let Some(o) = &r.origin {
        outln!(
            "pulled from {} on {} (pushed by {} from {} on {})",
            printable(&o.remote),
            o.pulled_at,
            printable(&o.pushed_by),
            printable(&o.store),
            o.pushed_at
        );
        if !o.not_pulled.is_empty() {
            outln!(
                "not pulled  {} (`flammable pull {} {} --checkpoints all`)",
                printable(&o.not_pulled.join(", ")),
                printable(&o.remote),
                r.id
            );
        }
        if !o.not_pushed.is_empty() {
            outln!(
                "not pushed  {} (left on {}: `flammable push {} {} --checkpoints all` there)",
                printable(&o.not_pushed.join(", ")),
                printable(&o.host),
                printable(&o.remote),
                r.id
            );
        }
    }
    if let Some(m) = &r.message {
        outln!("message     {}", printable(m));
    }
    if !r.tags.is_empty() {
        outln!("tags        {}", printable(&r.tags.join(" ")));
    }
    if let Some(n) = &r.note {
        let mut lines = n.lines();
        outln!("note        {}", printable(lines.next().unwrap_or("")));
        for line in lines {
            outln!("            {}", printable(line));
        }
    }
    outln!("command     {}", printable(&r.argv.join(" ")));
    outln!("started     {} ({} ago)", r.started, age(&r.started));
    if let Some(e) = &r.ended {
        outln!("ended       {e} (took {})", duration(&r));
    }
    outln!("seed        {}", r.seed);
    outln!(
        "device      {} ({} threads) on {}",
        r.environment.device,
        r.environment.threads,
        r.environment.host
    );
    if let Some(d) = &r.distributed {
        let share = if d.allreduces > 0 {
            let seconds = d.allreduce_seconds / d.allreduces as f64;
            // Two processes on one machine average a small model's gradients in microseconds.
            let each = if seconds < 1e-3 {
                format!("{:.0} µs", seconds * 1e6)
            } else {
                format!("{:.1} ms", seconds * 1e3)
            };
            format!("; {each} an optimizer step averaging gradients")
        } else {
            String::new()
        };
        outln!(
            "processes   {} ({}) on {}: --batch-size {} each, {} a step{share}",
            d.world_size,
            printable(&d.backend),
            printable(&d.hosts.join(", ")),
            d.rank_batch,
            d.global_batch
        );
    }
    outln!(
        "build       {} {} `{}` of {}, profile {}, {}",
        r.build.kind,
        r.build.name,
        r.build.package,
        r.build.manifest_dir.display(),
        r.build.profile,
        r.build.rustc
    );
    if let Some(e) = &r.error {
        outln!("error       {}", printable(e));
    }
    if let Some(s) = &r.stopped_early {
        outln!(
            "stopped     early, after epoch {} (step {}): {}",
            s.epochs,
            s.step,
            printable(&s.reason)
        );
    }
    outln!("folder      {}", printable(&dir.display().to_string()));
    if !r.edits.is_empty() {
        outln!("\nedits");
        for e in &r.edits {
            // Tags in full (the whole list before and after); a message or note cut short.
            let room = if e.field == crate::store::record::EditedField::Tags {
                usize::MAX
            } else {
                60
            };
            let value = |v: &Option<String>| match v {
                Some(v) => format!("`{}`", truncate(v, room)),
                None => "none".to_string(),
            };
            outln!(
                "  {} {} {}: {} → {}",
                e.at,
                printable(&e.by),
                e.field,
                value(&e.from),
                value(&e.to)
            );
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join(HYPERPARAMETERS_FILE)) {
        outln!("\nhyperparameters");
        match parse_config(text, &dir.join(HYPERPARAMETERS_FILE)) {
            Ok(values) => {
                for (k, v) in values {
                    outln!("  {k:<16} {}", printable(v.as_deref().unwrap_or("None")));
                }
            }
            Err(e) => crate::util::stderr::errln!("warning: run {}: {e}", r.id),
        }
    }
    if !r.metrics.is_empty() {
        outln!("\nfinal metrics");
        for (k, v) in &r.metrics {
            outln!("  {k:<16} {}", metric_text(*v));
        }
    }
    for t in &r.tests {
        match (&t.checkpoint, t.step) {
            // `latest` and `best` name another set as training goes on: the step says which.
            (Some(c), Some(step)) if !c.starts_with("step-") => {
                outln!("\ntested by {} (checkpoint {c}, step {step})", t.run)
            }
            (Some(c), _) => outln!("\ntested by {} (checkpoint {c})", t.run),
            (None, _) => outln!("\ntested by {}", t.run),
        }
        for (k, v) in &t.metrics {
            outln!("  {k:<16} {}", metric_text(*v));
        }
    }
    if let Ok(points) = run_metrics(store, &r.id) {
        let mut series: BTreeMap<&str, (usize, f64, f64, f64)> = BTreeMap::new();
        for p in &points {
            let e = series
                .entry(&p.name)
                .or_insert((0, f64::INFINITY, f64::NEG_INFINITY, 0.0));
            e.0 += 1;
            e.1 = e.1.min(p.value);
            e.2 = e.2.max(p.value);
            e.3 = p.value;
        }
        if !series.is_empty() {
            outln!("\nmetric series  (points, min, max, last)");
            for (k, (n, lo, hi, last)) in series {
                outln!(
                    "  {k:<16} {n:>7}  {}  {}  {}",
                    metric_text(lo),
                    metric_text(hi),
                    metric_text(last)
                );
            }
        }
    }
    let weights = dir.join(CHECKPOINTS_DIR).join("latest.safetensors");
    if let Some(vars) = crate::store::model_summary::read_safetensors(&weights) {
        outln!("\nmodel (checkpoint latest)");
        for line in crate::store::model_summary::table(&vars).lines() {
            outln!("  {line}");
        }
    }
    outln!("\nfiles");
    for f in walk(&dir) {
        outln!("  {f}");
    }
    match &r.snapshot {
        Some(s) => {
            let name = format!("{}{}", snapshot::REF_PREFIX, r.id);
            let kept_by = if snapshot::has_ref(&s.git_dir, &name) {
                name
            } else {
                "no ref of its own: a rerun's, or removed; `git gc` may delete it".to_string()
            };
            outln!("\ncode        snapshot {} ({kept_by})", s.commit);
            if let Some(p) = &s.parent {
                outln!("            on {p}");
            }
            if let Ok(changes) = snapshot::changed_paths(&s.git_dir, &s.commit) {
                if s.parent.is_some() && !changes.is_empty() {
                    outln!("uncommitted files it ran with:");
                    for c in changes {
                        outln!("  {} {}", mark(c.kind), printable(&c.path));
                    }
                }
            }
            for (p, n) in &s.skipped {
                outln!("  left out (size): {} ({n} bytes)", printable(p));
            }
        }
        None => outln!("\ncode        no snapshot"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The metric points of run `id` (none when it has no metrics file); a damaged file is
/// named in a warning, with the points that could be read.
pub(super) fn run_metrics(store: &Store, id: &str) -> Result<Vec<crate::store::metrics::Point>> {
    let dir = store.run_dir(id);
    let (points, unnamed) = crate::store::followers::read_run_metrics(&dir)
        .map_err(|e| Error::io("cannot read metrics", store.metrics_path(id), e))?;
    if unnamed > 0 {
        crate::util::stderr::errln!(
            "warning: {unnamed} metric record(s) of run {id} name no metric of their .names file: the metric files in {} are damaged",
            dir.display()
        );
    }
    Ok(points)
}

pub(super) fn mark(kind: ChangeKind) -> char {
    match kind {
        ChangeKind::Added => 'A',
        ChangeKind::Deleted => 'D',
        ChangeKind::Modified => 'M',
    }
}

/// Files under `dir`, relative, sorted.
pub(super) fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                if rel == Path::new(HASHES_FILE) {
                    continue;
                }
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(format!(
                    "{} ({size} bytes)",
                    printable(&rel.display().to_string())
                ));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("a\u{1b}]0;owned\u{7}b\nc\u{9b}2J é"),
            "a\\u{1b}]0;owned\\u{7}b\\nc\\u{9b}2J é"
        );
        assert_eq!(printable("run\u{202E}txt.exe"), "run\\u{202e}txt.exe");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x\u{1b}[2Jy.txt"), "").unwrap();
        assert_eq!(walk(tmp.path()), ["x\\u{1b}[2Jy.txt (0 bytes)"]);
    }
}
