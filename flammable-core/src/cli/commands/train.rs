//! `train` and `train --resume`: a run, its code recorded, the task fitted.

use super::*;

pub(super) fn train(
    spec: &TaskSpec,
    g: &Global,
    a: TrainRequest,
    argv: Vec<String>,
    threads: usize,
) -> Result<ExitCode> {
    let stop = stop_on_signals();
    stop_when_the_sweep_asks(&stop);
    if let Some(world) = crate::collective::world().filter(|w| w.rank() != 0) {
        return follow_rank_0(spec, g, a, stop, world);
    }
    if let Some(resume_spec) = &a.resume {
        return resume(spec, g, resume_spec, stop);
    }
    if let Some(from) = a.from.clone() {
        return train_from(spec, g, &from, a, argv, threads, stop);
    }
    // Before the run exists: a typo in --best-metric is not a failed run.
    (spec.check_settings)(&a.train)?;
    let (device, device_name) = open_device(&g.device)?;
    let seed = g.seed.unwrap_or_else(rand::random);
    let store = g.store()?;
    let record = new_record(
        spec.experiment,
        RunKind::Train,
        None,
        g,
        argv,
        seed,
        device_name.clone(),
        threads,
    );
    let text = (spec.write_hyper)(&a.train, a.task.as_ref())?;
    let run = Run::start_with(&store, with_origin(record), Some(&text))?;
    let header = format!(
        "run {} of {} (train, seed {seed}, {device_name}) in {}",
        run.id(),
        spec.experiment,
        run.dir().display()
    );
    let trains_nothing = a.train.epochs == 0;
    let env = Env::new(device, seed)
        .with_config(a.train)
        .with_run(run)
        .with_quiet(g.quiet)
        .with_stop(stop);
    env.say(&header);
    if trains_nothing {
        env.say("warning: --epochs 0 trains nothing: this run will have no checkpoint to test or evaluate");
    }
    record_code(spec, &env, &store, g)?;
    lead_ranks(&env)?;
    fit_and_report(spec, &env, a.task.as_ref(), None)
}

/// `record` with what the environment says of its origin: the run it reruns (`rerun`), the
/// sweep and combination it trains (a sweep's run).
pub(super) fn with_origin(record: Record) -> Record {
    let from_env = |name: &str| std::env::var(name).ok().filter(|s| !s.is_empty());
    Record {
        rerun_of: from_env(crate::run::provenance::RERUN_OF_ENV),
        sweep: from_env(SWEEP_ENV),
        sweep_trial: from_env(SWEEP_TRIAL_ENV).and_then(|t| t.parse().ok()),
        ..record
    }
}

/// Builds the task, loads `checkpoint` (a resumed run), trains, records and prints the
/// final losses.
pub(super) fn fit_and_report(
    spec: &TaskSpec,
    env: &Env,
    hyper: &dyn Any,
    checkpoint: Option<&str>,
) -> Result<ExitCode> {
    let results = conclude(env, || {
        let results = (spec.fit)(hyper, env, checkpoint)?;
        if let Some(run) = env.run() {
            run.set_metrics(&results)?;
        }
        Ok(results)
    })?;
    print_results(env, "trained", &results)?;
    Ok(ExitCode::SUCCESS)
}

/// `train --resume RUN`: the same run, continued from its `latest` checkpoint with its own
/// hyperparameters and seed; a changed working tree is snapshotted and recorded.
pub(super) fn resume(
    spec: &TaskSpec,
    g: &Global,
    run_spec: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Result<ExitCode> {
    let store = g.store()?;
    let record = store.resolve(run_spec, |r| r.kind == RunKind::Train)?;
    of_this_experiment(spec, &record)?;
    if record.status == RunStatus::Finished {
        return Err(Error::usage(format!(
            "run {} finished: there is nothing to resume",
            record.id
        )));
    }
    let dir = store.run_dir(&record.id);
    let (found, notes) = crate::checkpoint::newest_good_checkpoint(&dir.join(CHECKPOINTS_DIR));
    for note in &notes {
        crate::util::stderr::errln!("warning: {note}");
    }
    if found.is_some() {
        same_world(&record)?;
    }
    let hyper_path = dir.join(HYPERPARAMETERS_FILE);
    if !hyper_path.exists() {
        // Written before the record since; a run of an older Flammable may lack it.
        return Err(Error::usage(format!(
            "run {} stopped before it recorded its hyperparameters: there is nothing to resume; train again",
            record.id
        )));
    }
    (spec.check_hyper)(&hyper_path)?;
    let (train_config, task_hyper, filled) = (spec.read_hyper)(&hyper_path)?;
    let (device, device_name) = open_device(&g.device)?;
    let run = Run::reopen(&store, &record.id)?;
    let stray = crate::checkpoint::remove_temporary_files(&dir.join(CHECKPOINTS_DIR));
    if stray > 0 {
        crate::util::stderr::errln!(
            "removed {stray} half-written checkpoint file(s) left by the interrupted process"
        );
    }
    let env = Env::new(device, record.seed)
        .with_config(train_config)
        .with_quiet(g.quiet)
        .with_stop(stop);
    let (env, checkpoint, state) = match found {
        Some((checkpoint, state)) => {
            run.truncate_metrics(state.metric_points)?;
            let env = env.with_run(run).with_resume(state.clone());
            (env, Some(checkpoint), state)
        }
        None if notes.is_empty() => {
            // Killed before its first checkpoint: nothing of it is kept but its seed, so it
            // starts again from the beginning, as the same run.
            run.truncate_metrics(0)?;
            (
                env.with_run(run),
                None,
                crate::checkpoint::TrainingState::default(),
            )
        }
        None => {
            return Err(Error::usage(format!(
                "run {} has no usable checkpoint to resume from (see the warnings above)",
                record.id
            )))
        }
    };
    match &checkpoint {
        Some(_) => env.say(&format!(
            "run {} of {} resumed at epoch {}, step {} (seed {}, {device_name})",
            record.id,
            spec.experiment,
            state.epoch + 1,
            state.step,
            record.seed
        )),
        None => env.say(&format!(
            "run {} of {} has no checkpoint yet: training it again from the start (seed {}, {device_name})",
            record.id, spec.experiment, record.seed
        )),
    }
    if let Some(line) = crate::hyper::defaults::describe(&record.id, &filled) {
        env.say(&line);
    }
    if let Some(original) = &record.snapshot {
        let suffix = format!("resume-{}", state.step);
        if let Ok((now, _)) =
            crate::run::provenance::snapshot_code_as(&store, &record, &g.code(), &suffix)
        {
            if let Some(line) = crate::run::provenance::code_changes(&record, &now) {
                env.say(&format!("warning: {line}"));
                if let Some(run) = env.run() {
                    run.update(|r| r.resumed_with.push(now.clone()))?;
                }
            } else {
                // The same code: the resume needs no snapshot of its own.
                let name = crate::run::provenance::resume_ref(&record.id, &suffix);
                let _ = crate::snapshot::delete_named_ref(&original.git_dir, &name);
            }
        }
    }
    lead_ranks(&env)?;
    fit_and_report(spec, &env, task_hyper.as_ref(), checkpoint.as_deref())
}

/// Why a run cannot record its code, and how to run without it.
pub(super) fn no_snapshot(why: &str) -> String {
    format!("no snapshot of the code: {why} (pass --allow-no-snapshot to run without one)")
}

/// Snapshots the code of the run in `env` (the repository of `g`'s code folder) and records
/// how its binary was built. A failed snapshot fails the run before any work, unless
/// `--allow-no-snapshot` (then it is reported and the run goes on without code).
pub(super) fn record_code(
    spec: &TaskSpec,
    env: &Env,
    store: &Store,
    g: &Global,
) -> Result<Option<crate::store::record::SnapshotRecord>> {
    let Some(run) = env.run() else {
        return Ok(None);
    };
    let build = crate::run::provenance::build_info(spec.build_target);
    if !build.stale_sources.is_empty() {
        env.say(&format!(
            "warning: this binary is older than {}: it may not be the code in the snapshot (rebuild it)",
            build.stale_sources.join(", ")
        ));
    }
    let snapshot = match crate::run::provenance::snapshot_code(store, &run.record(), &g.code()) {
        Ok((snapshot, lines)) => {
            for line in lines {
                env.say(&line);
            }
            // A repository created just now did not exist when the store was located.
            store.hide_from_git();
            Some(snapshot)
        }
        Err(e) if g.allow_no_snapshot => {
            // Printed even with --quiet: the run will not know its code.
            let line = format!("warning: no snapshot of the code: {e}");
            crate::util::stderr::errln!("{line}");
            run.log_line(&line);
            None
        }
        Err(e) => {
            let message = no_snapshot(&e);
            run.finish(RunStatus::Failed, Some(message.clone()))?;
            return Err(Error::msg(message));
        }
    };
    let recorded = snapshot.clone();
    run.update(|r| {
        r.build = build;
        r.snapshot = recorded;
    })?;
    Ok(snapshot)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn new_record(
    experiment: &str,
    kind: RunKind,
    parent: Option<String>,
    g: &Global,
    argv: Vec<String>,
    seed: u64,
    device: String,
    threads: usize,
) -> Record {
    Record {
        parent,
        message: g.message.clone(),
        argv,
        environment: Environment {
            device,
            threads,
            host: host_name(),
            flammable: env!("CARGO_PKG_VERSION").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
        },
        ..Record::new(experiment, kind, seed)
    }
}
