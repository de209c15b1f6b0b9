//! `serve [RUN]`: a run of its own whose parent is the train run served; its settings go to
//! `serving.ron`, its totals to its metrics when it stops.

use super::*;

/// The file a serve run keeps its settings in.
#[cfg(feature = "serve")]
pub(super) const SERVING_FILE: &str = "serving.ron";

#[cfg(not(feature = "serve"))]
pub(super) fn serve(
    _spec: &TaskSpec,
    _g: &Global,
    _a: crate::serve::ServeArgs,
    _argv: Vec<String>,
    _threads: usize,
) -> Result<ExitCode> {
    Err(Error::usage(crate::serve::UNAVAILABLE))
}

#[cfg(feature = "serve")]
pub(super) fn serve(
    spec: &TaskSpec,
    g: &Global,
    mut a: crate::serve::ServeArgs,
    argv: Vec<String>,
    threads: usize,
) -> Result<ExitCode> {
    // Checked (or generated) before a run is opened: a bad token would otherwise leave a
    // failed run behind.
    let given = argv
        .iter()
        .any(|arg| arg == "--token" || arg.starts_with("--token="));
    let source = if given {
        "--token"
    } else {
        "$FLAMMABLE_SERVE_TOKEN"
    };
    a.token = crate::web::listen::token_from(a.token.take(), a.host, source)?;
    a.check()?;
    // So is the address: a port in use, or an address not of this machine.
    let listener = crate::web::listen::bind_now(std::net::SocketAddr::new(a.host, a.port))?;
    let (checkpoint, note) = chosen_checkpoint(spec, g, a.run.as_deref(), a.checkpoint.clone())?;
    let (env, _) = child_run(
        spec,
        g,
        RunKind::Serve,
        (a.run.as_deref(), Some(&checkpoint)),
        argv,
        threads,
    )?;
    if let Some(note) = note {
        env.say(&note);
    }
    let store = g.store()?;
    let run = env
        .run()
        .ok_or_else(|| Error::msg("internal error: serve without a run"))?;
    let settings = crate::util::ron_text::to_pretty(&a).map_err(Error::msg)?;
    write_atomic(&run.dir().join(SERVING_FILE), settings.as_bytes())?;
    let parent_id = run
        .record()
        .parent
        .ok_or_else(|| Error::msg("internal error: a serve run without its train run"))?;
    let parent = store.resolve(&parent_id, |r| r.kind == RunKind::Train)?;
    let say = |line: &str| env.say(line);
    let results = conclude(&env, || {
        let results = crate::serve::serve(crate::serve::Serving {
            store: &store,
            parent,
            loader: spec.serve_loader,
            decode: spec.decode_request,
            non_finite_inputs: spec.non_finite_inputs,
            device: env.device().clone(),
            args: a.clone(),
            listener,
            serve_run: run.id(),
            say: &say,
        })?;
        run.set_metrics(&results)?;
        Ok(results)
    })?;
    print_results(&env, "served", &results)?;
    Ok(ExitCode::SUCCESS)
}
