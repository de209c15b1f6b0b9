//! `train --from RUN`: a run trained further, as a new run. It starts from RUN's newest good
//! checkpoint — weights, optimizer state, epoch and step, seeded generators — with RUN's
//! hyperparameters and seed unless flags change them, and names RUN as its parent.

use super::*;

/// The run `--from` names and its hyperparameter file, found before clap parses: its values
/// become the flags' defaults, as a `--config` file's do. `None` without `--from`.
pub(super) fn continued_hyperparameters<T: Task>(
    argv: &[OsString],
) -> Result<Option<(String, PathBuf)>> {
    let is_train = argv.iter().skip(1).any(|a| a == "train");
    let Some(run_spec) = flag_value(argv, "--from").filter(|_| is_train) else {
        return Ok(None);
    };
    let explicit = flag_value(argv, "--store").map(PathBuf::from);
    let store =
        crate::task::load::store_near_code::<T>(explicit.as_deref())?.scoped_to(T::experiment());
    let record = store.resolve(&run_spec, |r| r.kind == RunKind::Train)?;
    let path = store.run_dir(&record.id).join(HYPERPARAMETERS_FILE);
    Ok(Some((record.id, path)))
}

/// Refuses to train run `parent`, whose data were split with `parent_seed`, further on
/// another split: the new run would validate on rows the parent trained on.
pub(super) fn keeps_the_split(parent: &str, parent_seed: u64, train: &TrainConfig) -> Result<()> {
    if train.split_seed == parent_seed {
        return Ok(());
    }
    Err(Error::usage(format!(
        "--split-seed {}: run {parent} split its data with --split-seed {parent_seed}, and training it further on another split would validate on rows it trained on (leave --split-seed out)",
        train.split_seed
    )))
}

/// Trains train run `from` further as a new run of `request`'s hyperparameters (the parent's,
/// with the flags given), from the parent's newest good checkpoint.
pub(super) fn train_from(
    spec: &TaskSpec,
    g: &Global,
    from: &str,
    request: TrainRequest,
    argv: Vec<String>,
    threads: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Result<ExitCode> {
    let store = g.store()?;
    let parent = store.resolve(from, |r| r.kind == RunKind::Train)?;
    of_this_experiment(spec, &parent)?;
    if store.is_alive(&parent.id) {
        return Err(Error::usage(format!(
            "run {} is still training: train from it once it has ended",
            parent.id
        )));
    }
    let parent_checkpoints = store.run_dir(&parent.id).join(CHECKPOINTS_DIR);
    let (found, notes) = crate::checkpoint::newest_good_checkpoint(&parent_checkpoints);
    for note in &notes {
        crate::util::stderr::errln!("warning: {note}");
    }
    let Some((set, mut state)) = found else {
        return Err(Error::usage(format!(
            "run {} has no checkpoint to train from",
            parent.id
        )));
    };
    let epochs = request.train.epochs as u64;
    if epochs <= state.epoch {
        return Err(Error::usage(format!(
            "run {} trained {} epoch(s): give --epochs above that to train it further (e.g. --epochs {})",
            parent.id,
            state.epoch,
            state.epoch * 2
        )));
    }
    (spec.check_settings)(&request.train)?;
    // The parent's hyperparameters were the flags' defaults; the fields it lacked took the
    // task's own defaults, which is said as `test` and `serve` say it.
    let (parent_train, _, filled) =
        (spec.read_hyper)(&store.run_dir(&parent.id).join(HYPERPARAMETERS_FILE))?;
    keeps_the_split(&parent.id, parent_train.split_seed, &request.train)?;
    let step_change = keeps_the_step(
        &parent,
        &state,
        parent_train.batch_size,
        request.train.batch_size,
    )?;
    let seed = g.seed.unwrap_or(parent.seed);
    let (device, device_name) = open_device(&g.device)?;
    let record = new_record(
        spec.experiment,
        RunKind::Train,
        Some(parent.id.clone()),
        g,
        argv,
        seed,
        device_name.clone(),
        threads,
    );
    let text = (spec.write_hyper)(&request.train, request.task.as_ref())?;
    let run = Run::start_with(&store, super::train::with_origin(record), Some(&text))?;
    // The parent's set becomes this run's first: linked, not copied (sets are never
    // rewritten), under its own name, with `latest` pointing at it.
    let own = run.checkpoint_path(&set, "ron")?;
    let own = own.parent().map(Path::to_path_buf).unwrap_or_default();
    for ext in crate::checkpoint::CHECKPOINT_FILES {
        let src = parent_checkpoints.join(format!("{set}.{ext}"));
        if src.exists() {
            let dst = own.join(format!("{set}.{ext}"));
            if std::fs::hard_link(&src, &dst).is_err() {
                std::fs::copy(&src, &dst)
                    .map_err(|e| Error::io("cannot copy the checkpoint", &src, e))?;
            }
        }
    }
    crate::checkpoint::link_checkpoint(&own, &set, "latest")?;
    // A new run counts its own metric points, its own patience and its own best: with the
    // parent's best to beat, it would keep no `best` checkpoint of its own.
    state.metric_points = 0;
    state.stale_validations = 0;
    state.best = None;
    state.early_best = None;
    let env = Env::new(device, seed)
        .with_config(request.train)
        .with_run(run)
        .with_quiet(g.quiet)
        .with_stop(stop)
        .with_resume(state.clone());
    env.say(&format!(
        "run {} of {} (train, seed {seed}, {device_name}): run {} trained further from epoch {}, step {}",
        env.run().map_or_else(String::new, |r| r.id()),
        spec.experiment,
        parent.id,
        state.epoch + 1,
        state.step
    ));
    if let Some(line) = crate::hyper::defaults::describe(&parent.id, &filled) {
        env.say(&line);
    }
    if let Some(line) = step_change {
        env.say(&line);
    }
    record_code(spec, &env, &store, g)?;
    lead_ranks(&env)?;
    fit_and_report(spec, &env, request.task.as_ref(), Some("latest"))
}

/// Refuses to train further from `parent` stopped in the middle of an epoch with steps of
/// another size (`--batch-size`, or the number of processes): the new run continues that
/// epoch after the batches the parent did, which count examples only in steps of the
/// parent's size (some examples would be skipped or trained twice).
///
/// Otherwise, when its steps change size (another number of processes: `--batch-size` is
/// per process), the line that says so.
fn keeps_the_step(
    parent: &Record,
    state: &crate::checkpoint::TrainingState,
    parent_batch: usize,
    batch: usize,
) -> Result<Option<String>> {
    let parent_world = parent.processes();
    let world = crate::collective::world().map_or(1, |w| w.size());
    let (before, now) = (parent_batch * parent_world, batch * world);
    if before == now {
        return Ok(None);
    }
    if state.batch == 0 {
        return Ok(Some(format!(
            "a step now reads {now} examples ({world} process(es) × --batch-size {batch}), where run {} read {before} ({parent_world} × {parent_batch}): --batch-size is per process",
            parent.id
        )));
    }
    Err(Error::usage(format!(
        "run {} stopped in the middle of epoch {} with steps of {before} examples ({parent_world} process(es) × --batch-size {parent_batch}); \
         this run's steps would be of {now}: train further from it with steps of {before}, or resume it ({}) until its epoch ends",
        parent.id,
        state.epoch + 1,
        super::ranks::resume_command(parent)
    )))
}
