//! `gc`: what it removed, printed (removing trashed runs and orphan refs is a store operation).

use super::*;

pub(super) fn gc(store: &Store, dry_run: bool) -> Result<ExitCode> {
    let report = store.gc(dry_run)?;
    let (verb, refs) = if dry_run {
        ("would remove", "would remove the ref")
    } else {
        ("removed", "removed the ref")
    };
    for id in &report.runs {
        if report.kept_refs.contains(id) {
            outln!("{verb} the trashed copy of run {id} (the run in the store keeps its refs)");
        } else if let Some((_, other)) = report.shared_refs.iter().find(|(r, _)| r == id) {
            outln!(
                "{verb} run {id} (its refs stay: the store {} holds it too)",
                other.display()
            );
        } else {
            outln!("{verb} run {id} and its refs");
        }
    }
    for name in &report.orphan_refs {
        outln!("{refs} {name} (its run folder is gone)");
    }
    for id in &report.unrecorded {
        outln!(
            "{verb} the folder {id} of a run that never got its record (its process stopped first)"
        );
    }
    if report.runs.is_empty() && report.orphan_refs.is_empty() && report.unrecorded.is_empty() {
        outln!("nothing to remove");
    }
    for warning in &report.warnings {
        crate::util::stderr::errln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
