//! `mpiexec -n N <task> train …`: the ranks of one training. Rank 0 is the run (the
//! snapshot, the record, the metrics, the checkpoints); the other ranks write nothing into
//! the store. Before training, the ranks agree on the seed and check that they run the same
//! binary with the same hyperparameters; a rank that fails later has its error recorded by
//! rank 0, and the world ends.

use super::*;
use crate::collective::{fingerprint, Collective};
use crate::store::record::Distributed;

/// What each rank tells the others before training.
#[derive(serde::Serialize, serde::Deserialize)]
struct Agreement {
    seed: u64,
    /// The hyperparameters as the run writes them (`hyperparameters.ron`): a rank whose differ
    /// is told which.
    hyperparameters: String,
    binary: u64,
    host: String,
}

/// Joins the other ranks when a launcher started several processes; refuses a command that
/// is not `train` there (it would run once per process).
pub(super) fn join_ranks(command: &Erased) -> Result<Option<&'static dyn Collective>> {
    match (crate::collective::launched(), command) {
        (Some(n), Erased::Sweep(_)) if n > 1 => Err(Error::usage(format!(
            "this process is one of {n} started by mpiexec or srun: a sweep runs alone (its runs are processes of their own; see --shard to spread a sweep over machines)"
        ))),
        (Some(n), command) if n > 1 && !matches!(command, Erased::Train(_)) => Err(Error::usage(format!(
            "this process is one of {n} started by mpiexec or srun: only `train` runs on several processes (start other commands alone)"
        ))),
        _ => crate::collective::start(),
    }
}

/// Ends every rank together on an error that every rank reached (their agreement before
/// training): rank 0 prints it (and has recorded it); MPI is finalised, so no rank needs to
/// abort the others.
fn refuse_together(world: &dyn Collective, e: Error) -> ! {
    if world.rank() == 0 {
        crate::util::stderr::errln!("error: {e}");
    }
    world.finalize();
    std::process::exit(i32::from(e.exit_code()))
}

/// Rank 0, with its run in `env` (hyperparameters written, code recorded): agrees with the
/// other ranks, records how the run is spread, and has a failure of another rank recorded.
pub(super) fn lead_ranks(env: &Env) -> Result<()> {
    let Some(world) = crate::collective::world() else {
        return Ok(());
    };
    let Some(run) = env.run() else {
        return Ok(());
    };
    // From the first collective on, a failure of another rank is recorded. The hook runs
    // while the loop waits in a collective, and the world ends after it: it writes the
    // record through the store (the run's handle stays with the loop).
    let (store, id) = (run.store().clone(), run.id());
    crate::collective::on_peer_failure(move |message| {
        crate::util::stderr::errln!("error: {message}");
        let _ = store.update(&id, |r| {
            r.status = RunStatus::Failed;
            r.ended = Some(crate::store::now_rfc3339());
            r.error = Some(message.to_string());
        });
    });
    let text = std::fs::read(run.hyperparameters_path())
        .map_err(|e| Error::io("cannot read", run.hyperparameters_path(), e))?;
    let all = agree(world, env.seed(), &text)?;
    if let Err(e) = check_agreement(&all) {
        let _ = run.finish(RunStatus::Failed, Some(e.to_string()));
        refuse_together(world, e);
    }
    let rank_batch = env.config().batch_size;
    let distributed = Distributed {
        backend: world.backend().to_string(),
        world_size: world.size(),
        rank_batch,
        global_batch: rank_batch * world.size(),
        hosts: all.iter().map(|a| a.host.clone()).collect(),
        allreduce_seconds: 0.0,
        allreduces: 0,
    };
    env.say(&format!(
        "{} processes ({}): each trains on {rank_batch} examples of every step of {} (--batch-size is per process)",
        world.size(),
        distributed.hosts.join(", "),
        distributed.global_batch
    ));
    run.update(|r| {
        // A resumed run adds to the communication time it had.
        let before = r.distributed.take().unwrap_or_default();
        r.distributed = Some(Distributed {
            allreduce_seconds: before.allreduce_seconds,
            allreduces: before.allreduces,
            ..distributed
        });
    })?;
    Ok(())
}

/// A rank other than 0: trains with rank 0, recording nothing. Its hyperparameters are
/// those of its own command line (a resumed run's are read from the run's folder, so the
/// store must be readable there: the same host, or shared storage).
pub(super) fn follow_rank_0(
    spec: &TaskSpec,
    g: &Global,
    a: TrainRequest,
    stop: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    world: &'static dyn Collective,
) -> Result<ExitCode> {
    let (train, hyper, text, checkpoint) = match &a.resume {
        Some(id) => {
            let store = g.store()?;
            let record = store.resolve(id, |r| r.kind == RunKind::Train)?;
            let path = store.run_dir(&record.id).join(HYPERPARAMETERS_FILE);
            let text = std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
            let (train, hyper, _) = (spec.read_hyper)(&path)?;
            (train, hyper, text, None::<String>)
        }
        None => {
            let text = (spec.write_hyper)(&a.train, a.task.as_ref())?.into_bytes();
            (a.train, a.task, text, None)
        }
    };
    let all = agree(world, g.seed.unwrap_or(0), &text)?;
    if let Err(e) = check_agreement(&all) {
        refuse_together(world, e);
    }
    let seed = all.first().map_or(0, |a| a.seed);
    let (device, _) = open_device(&g.device)?;
    let env = Env::new(device, seed)
        .with_config(train)
        .with_quiet(true)
        .with_stop(stop);
    // Rank 0 gives the weights and where training stands (`Task::fit`), whatever this rank
    // loads.
    conclude(&env, || {
        (spec.fit)(hyper.as_ref(), &env, checkpoint.as_deref())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Every rank's agreement, in rank order.
fn agree(world: &dyn Collective, seed: u64, hyperparameters: &[u8]) -> Result<Vec<Agreement>> {
    let mine = Agreement {
        seed,
        hyperparameters: String::from_utf8_lossy(hyperparameters).into_owned(),
        binary: binary_fingerprint(),
        host: host_name(),
    };
    let bytes = serde_json::to_vec(&mine).map_err(|e| Error::msg(e.to_string()))?;
    world
        .all_gather(&bytes)?
        .iter()
        .enumerate()
        .map(|(rank, b)| {
            serde_json::from_slice(b)
                .map_err(|e| Error::msg(format!("rank {rank} sent an unreadable greeting: {e}")))
        })
        .collect()
}

/// Refuses ranks that would train something else than rank 0: other hyperparameters, or
/// another binary (other code). Every rank reaches the same verdict.
fn check_agreement(all: &[Agreement]) -> Result<()> {
    let Some(first) = all.first() else {
        return Ok(());
    };
    for (rank, a) in all.iter().enumerate().skip(1) {
        if a.binary != first.binary {
            return Err(Error::usage(format!(
                "rank {rank} ({}) runs another binary than rank 0 ({}): every rank must run the same build of the same code",
                a.host, first.host
            )));
        }
        if a.hyperparameters != first.hyperparameters {
            return Err(Error::usage(format!(
                "rank {rank} ({}) has other hyperparameters than rank 0 ({}){}: every rank must be started with the same flags",
                a.host,
                first.host,
                differing_lines(&first.hyperparameters, &a.hyperparameters)
            )));
        }
    }
    Ok(())
}

/// What differs between two hyperparameter files (one `name: value` a line), as
/// ` (lr: 0.2, rank 0's 0.1)`: at most three, empty when the lines agree (their order does).
fn differing_lines(first: &str, other: &str) -> String {
    let field = |line: &str| {
        let line = line.trim().trim_end_matches(',');
        line.split_once(": ")
            .map(|(name, value)| (name.to_string(), value.to_string()))
    };
    let ours: Vec<(String, String)> = first.lines().filter_map(field).collect();
    let mut said: Vec<String> = other
        .lines()
        .filter_map(field)
        .filter_map(|(name, value)| {
            let theirs = ours
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str());
            match theirs {
                Some(v) if v == value => None,
                Some(v) => Some(format!("{name}: {value}, rank 0's {v}")),
                None => Some(format!("{name}: {value}, which rank 0 has not")),
            }
        })
        .collect();
    if said.is_empty() {
        return String::new();
    }
    said.truncate(3);
    format!(" ({})", said.join("; "))
}

/// Refuses to resume run `record` from a checkpoint on another number of processes than it
/// trained on: its position counts steps of that many × `--batch-size` examples.
pub(super) fn same_world(record: &Record) -> Result<()> {
    let before = record.processes();
    let now = crate::collective::world().map_or(1, |w| w.size());
    if before == now {
        return Ok(());
    }
    let how = resume_command(record);
    // The examples of its steps, where the record says them (a run of several processes).
    let middle = match record.distributed.as_ref().map(|d| d.global_batch) {
        Some(global) if global % now == 0 => {
            format!("from the middle of an epoch with --batch-size {}", global / now)
        }
        Some(global) => format!(
            "not from the middle of an epoch: its steps of {global} examples do not split into {now} equal parts"
        ),
        None => format!(
            "from the middle of an epoch only with steps of as many examples: {now} × --batch-size = {before} × its --batch-size"
        ),
    };
    Err(Error::usage(format!(
        "run {} trained on {before} process(es), and its checkpoint counts steps of {before} × --batch-size examples: resume it on as many ({how}), or train further from it on {now} with `train --from {}` (a new run; {middle})",
        record.id, record.id
    )))
}

/// The command that resumes run `record` on as many processes as it trained on, quoted for
/// a message: `mpiexec -n N <program> train --resume ID`, without mpiexec for one process.
pub(super) fn resume_command(record: &Record) -> String {
    let before = record.processes();
    let program = record.argv.first().map_or("<task>", String::as_str);
    if before == 1 {
        format!("`{program} train --resume {}`", record.id)
    } else {
        format!(
            "`mpiexec -n {before} {program} train --resume {}`",
            record.id
        )
    }
}

/// A hash of this process's executable: ranks that run other builds differ (a rank that
/// cannot read its own executable, or all of it, contributes a hash of what it read, and is
/// compared as such).
fn binary_fingerprint() -> u64 {
    let file = std::env::current_exe().and_then(std::fs::File::open);
    file.map_or_else(|_| fingerprint(&[]), stream_fingerprint)
}

/// The hash of what `from` reads, read a block at a time: reading a task's executable (tens
/// of megabytes) into one buffer had every rank fault in that much fresh memory at start,
/// about a quarter of a second on this project's virtual machines.
fn stream_fingerprint(mut from: impl std::io::Read) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    let mut block = vec![0u8; 1 << 16];
    loop {
        match from.read(&mut block) {
            Ok(0) => break,
            Ok(n) => hasher.write(&block[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one byte a call, as a slow file might.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn a_rank_with_other_hyperparameters_is_told_which() {
        let text = |lr: &str, hidden: &str| {
            format!("(\n    train: (\n        epochs: 2,\n        lr: {lr},\n    ),\n    task: (\n        hidden: {hidden},\n    ),\n)\n")
        };
        assert_eq!(differing_lines(&text("0.1", "8"), &text("0.1", "8")), "");
        assert_eq!(
            differing_lines(&text("0.1", "8"), &text("0.2", "16")),
            " (lr: 0.2, rank 0's 0.1; hidden: 16, rank 0's 8)"
        );
    }

    #[test]
    fn an_executables_hash_depends_on_its_bytes_not_on_how_they_were_read() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = stream_fingerprint(&bytes[..]);
        assert_eq!(whole, stream_fingerprint(Trickle(&bytes)));
        let mut other = bytes.clone();
        other[150_000] ^= 1;
        assert_ne!(whole, stream_fingerprint(&other[..]));
        assert_ne!(whole, stream_fingerprint(&bytes[..199_999]));
    }
}
