//! `test` and `eval`: runs of their own that use a train run's checkpoint.

use super::*;

/// The train run `run_spec` names, or the latest finished train run of the experiment.
pub(super) fn parent_run(spec: &TaskSpec, store: &Store, run_spec: Option<&str>) -> Result<Record> {
    let parent = match run_spec {
        Some(run_spec) => store.resolve(run_spec, |r| r.kind == RunKind::Train)?,
        None => store
            .latest(spec.experiment, RunKind::Train)?
            .ok_or_else(|| {
                Error::usage(format!(
                    "no finished train run of `{}` in {}; run `train` first",
                    spec.experiment,
                    store.root().display()
                ))
            })?,
    };
    of_this_experiment(spec, &parent)?;
    Ok(parent)
}

/// An error unless `record` is a run of the task's experiment.
pub(super) fn of_this_experiment(spec: &TaskSpec, record: &Record) -> Result<()> {
    if record.experiment == spec.experiment {
        return Ok(());
    }
    Err(Error::usage(format!(
        "run {} is of experiment `{}`, not `{}`",
        record.id, record.experiment, spec.experiment
    )))
}

/// Opens a test or eval run of `parent`: its hyperparameters and a fresh run; `checkpoint`,
/// when given, must exist (a follower waits for its sets instead).
pub(super) fn child_run(
    spec: &TaskSpec,
    g: &Global,
    kind: RunKind,
    (run_spec, checkpoint): (Option<&str>, Option<&str>),
    argv: Vec<String>,
    threads: usize,
) -> Result<(Env, Box<dyn Any>)> {
    let store = g.store()?;
    let parent = parent_run(spec, &store, run_spec)?;
    let hyper_path = store.run_dir(&parent.id).join(HYPERPARAMETERS_FILE);
    let (train_config, task_hyper, filled) = (spec.read_hyper)(&hyper_path)?;
    if let Some(checkpoint) = checkpoint {
        has_checkpoint(&store, &parent, train_config.epochs, checkpoint)?;
    }
    let (device, device_name) = open_device(&g.device)?;
    let seed = g.seed.unwrap_or(parent.seed);
    let record = new_record(
        spec.experiment,
        kind,
        Some(parent.id.clone()),
        g,
        argv,
        seed,
        device_name,
        threads,
    );
    let record = Record {
        checkpoint: checkpoint.map(str::to_string),
        ..record
    };
    let text = (spec.write_hyper)(&train_config, task_hyper.as_ref())?;
    let run = Run::start_with(&store, record, Some(&text))?;
    let header = format!(
        "run {} of {} ({kind} of {})",
        run.id(),
        spec.experiment,
        parent.id
    );
    // Predictions (eval, serve) need only what the run's folder holds, never its data.
    let env = Env::new(device, seed)
        .with_config(train_config)
        .with_run(run)
        .with_quiet(g.quiet)
        .with_needs_data(kind == RunKind::Test);
    env.say(&header);
    if let Some(line) = crate::hyper::defaults::describe(&parent.id, &filled) {
        env.say(&line);
    }
    if let Some(snapshot) = record_code(spec, &env, &store, g)? {
        if let Some(line) = crate::run::provenance::code_changes(&parent, &snapshot) {
            env.say(&line);
        }
    }
    Ok((env, task_hyper))
}

pub(super) fn test(
    spec: &TaskSpec,
    g: &Global,
    a: TestArgs,
    argv: Vec<String>,
    threads: usize,
) -> Result<ExitCode> {
    let (checkpoint, note) = chosen_checkpoint(spec, g, a.run.as_deref(), a.checkpoint)?;
    let (env, hyper) = child_run(
        spec,
        g,
        RunKind::Test,
        (a.run.as_deref(), Some(&checkpoint)),
        argv,
        threads,
    )?;
    if let Some(note) = note {
        env.say(&note);
    }
    let results = conclude(&env, || {
        let set = pinned_set(&env, &checkpoint)?;
        let results = (spec.test)(hyper.as_ref(), &env, &set)?;
        if let Some(run) = env.run() {
            run.set_metrics(&results)?;
            run.report_to_parent(&results)?;
        }
        Ok(results)
    })?;
    print_results(&env, "tested", &results)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn eval(
    spec: &TaskSpec,
    g: &Global,
    a: EvalArgs,
    argv: Vec<String>,
    threads: usize,
) -> Result<ExitCode> {
    let (run_spec, input, output) = match a.args.as_slice() {
        [run, i, o] => (
            Some(run.to_string_lossy().into_owned()),
            i.clone(),
            o.clone(),
        ),
        [i, o] => (None, i.clone(), o.clone()),
        _ => {
            return Err(Error::usage(
                "eval takes [RUN] IN OUT: the train run (default: the latest), the input file and the file to write the result to (`-`: only print it)",
            ))
        }
    };
    if !input.exists() {
        return Err(Error::usage(format!(
            "input `{}` does not exist",
            input.display()
        )));
    }
    // A device or a pipe (`/dev/zero`, `/dev/stdin`) has no end a loader can count on: read
    // whole, it fills memory, with no step boundary where Ctrl-C is taken.
    if !input.is_file() {
        return Err(Error::usage(format!(
            "input `{}` is not a file (a folder, a device or a pipe): name a sample file",
            input.display()
        )));
    }
    if same_file(&input, &output) {
        return Err(Error::usage(format!(
            "the result would overwrite the input `{}`: name another OUT",
            input.display()
        )));
    }
    let (checkpoint, note) = chosen_checkpoint(spec, g, run_spec.as_deref(), a.checkpoint)?;
    let (env, hyper) = child_run(
        spec,
        g,
        RunKind::Eval,
        (run_spec.as_deref(), Some(&checkpoint)),
        argv,
        threads,
    )?;
    if let Some(note) = note {
        env.say(&note);
    }
    let result = conclude(&env, || {
        let set = pinned_set(&env, &checkpoint)?;
        (spec.eval)(hyper.as_ref(), &env, &set, &input, &output)
    })?;
    outln!("{}", result.as_ron());
    if output != Path::new("-") {
        env.say(&format!("wrote {}", output.display()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The numbered set that checkpoint `name` of the run's parent is now, whose step the run
/// records (`checkpoint_step`): the name to load. A train run still going moves `latest` on;
/// two tests of it are then told apart, and neither loads half of one set and half of the
/// next. `name` itself when the set cannot be told.
fn pinned_set(env: &Env, name: &str) -> Result<String> {
    let Some(run) = env.run() else {
        return Ok(name.to_string());
    };
    let alias = run.checkpoint_to_load(name, "ron");
    let Some((set, step)) = alias
        .parent()
        .and_then(|dir| crate::checkpoint::set_of(dir, name))
    else {
        return Ok(name.to_string());
    };
    run.update(|r| r.checkpoint_step = Some(step))?;
    Ok(set)
}

/// The checkpoint a test or eval of train run `run_spec` uses: the one `asked` for, else
/// `best` where the run kept one (it is then said, with how to test the last one), else
/// `latest`.
pub(super) fn chosen_checkpoint(
    spec: &TaskSpec,
    g: &Global,
    run_spec: Option<&str>,
    asked: Option<String>,
) -> Result<(String, Option<String>)> {
    if let Some(asked) = asked {
        return Ok((asked, None));
    }
    let store = g.store()?;
    let parent = parent_run(spec, &store, run_spec)?;
    let dir = store.run_dir(&parent.id).join(CHECKPOINTS_DIR);
    if crate::checkpoint::require(&dir, &parent.id, "best").is_err() {
        return Ok(("latest".into(), None));
    }
    let by = crate::hyper::read_record_parts(
        &store.run_dir(&parent.id).join(HYPERPARAMETERS_FILE),
        &(spec.default_config)(),
    )
    .ok()
    .and_then(|(train, _, _)| train.best_metric)
    .map(|m| format!(", by val/{m}"))
    .unwrap_or_default();
    Ok((
        "best".into(),
        Some(format!(
            "checkpoint: best{by} (--checkpoint latest for the last one)"
        )),
    ))
}

/// True when `a` and `b` name the same file (`b` need not exist).
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// An error, before any run starts, unless train run `parent` has checkpoint `name`; it says
/// why there is none (no epoch trained, a failure or crash before the first one).
pub(super) fn has_checkpoint(
    store: &Store,
    parent: &Record,
    epochs: usize,
    name: &str,
) -> Result<()> {
    let dir = store.run_dir(&parent.id).join(CHECKPOINTS_DIR);
    let missing = match crate::checkpoint::require(&dir, &parent.id, name) {
        Ok(()) => return Ok(()),
        Err(missing) => missing,
    };
    if !missing.available.is_empty() {
        return Err(Error::usage(missing.of_run(parent)));
    }
    let pulled = crate::checkpoint::pull_hint(parent, name);
    if !pulled.is_empty() {
        return Err(Error::usage(format!(
            "run {} has no checkpoint here{pulled}",
            parent.id
        )));
    }
    let why = match (parent.status, epochs) {
        (_, 0) => "it trained 0 epochs".to_string(),
        (RunStatus::Failed, _) => "it failed before its first checkpoint".to_string(),
        (RunStatus::Crashed | RunStatus::Interrupted, _) => format!(
            "it stopped before its first checkpoint; `train --resume {}` trains it from the start",
            parent.id
        ),
        (RunStatus::Running, _) => "it has not written its first checkpoint yet".to_string(),
        _ => "none was written".to_string(),
    };
    Err(Error::usage(format!(
        "run {} has no checkpoint ({why})",
        parent.id
    )))
}
