//! `train --sweep … --shard I/N`: one part of a sweep, so that N processes (a Slurm job
//! array's tasks, a Kubernetes Indexed Job's pods, N shells) fill one sweep together. The
//! plan is deterministic (the same flags give the same combinations in the same order), and
//! combination `t` belongs to shard `t mod N`: strided, so that each shard gets a share of
//! every axis's values whatever their order.
//!
//! The shard comes from `--shard`, else from a Slurm array (`SLURM_ARRAY_TASK_ID`,
//! `SLURM_ARRAY_TASK_COUNT`, and `SLURM_ARRAY_TASK_MIN`/`_STEP` for an array that does not
//! start at 0), else from a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` and
//! [`SHARD_COUNT_ENV`], which the emitted manifest sets: Kubernetes has no variable for the
//! completion count). The sweep's id comes from `--sweep-id`, else from a Slurm array
//! (`slurm-<SLURM_ARRAY_JOB_ID>`): every shard must name the same sweep.

/// The environment variable that gives a Kubernetes Indexed Job's pods the shard count (the
/// Job's `completions`).
pub(super) const SHARD_COUNT_ENV: &str = "FLAMMABLE_SHARD_COUNT";

/// One part of a sweep's plan: shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Shard {
    pub(super) index: usize,
    pub(super) count: usize,
}

impl Shard {
    /// True when combination `trial` (from 0, in the plan's order) is this shard's.
    pub(super) fn owns(&self, trial: usize) -> bool {
        trial % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `--shard I/N` (0 ≤ I < N).
pub(super) fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("`{text}`: write I/N, shard I (from 0) of N, e.g. 0/4");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let index: usize = i.trim().parse().map_err(|_| bad())?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(format!("`{text}`: a sweep has at least 1 shard"));
    }
    if index >= count {
        return Err(format!(
            "`{text}`: shards of {count} are numbered 0 to {}",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// Parses `--sweep-id ID`: 1 to 64 letters, digits, `-` and `_` (it names a file of the
/// store), not starting with `-`, and not `latest` (which `train --resume` reads as the
/// newest run).
pub(super) fn parse_sweep_id(text: &str) -> Result<String, String> {
    if text == "latest" {
        return Err(
            "`latest` names the newest run (`train --resume latest`): choose another sweep id"
                .to_string(),
        );
    }
    let ok = !text.is_empty()
        && text.len() <= 64
        && !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}`: a sweep id is 1 to 64 letters, digits, - and _ (not starting with -)"
        ))
    }
}

/// Where a shard was told which it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ShardSource {
    /// `--shard I/N`.
    Flag,
    /// A Slurm job array's variables.
    Slurm,
    /// A Kubernetes Indexed Job's variables.
    Kubernetes,
}

impl ShardSource {
    /// How a line names it.
    pub(super) fn describe(self) -> &'static str {
        match self {
            ShardSource::Flag => "--shard",
            ShardSource::Slurm => "the Slurm array's SLURM_ARRAY_TASK_ID",
            ShardSource::Kubernetes => "the Indexed Job's JOB_COMPLETION_INDEX",
        }
    }
}

/// Which sweep this process fills, and which part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Placement {
    /// The shard and where it comes from; `None`: every combination.
    pub(super) shard: Option<(Shard, ShardSource)>,
    /// The sweep's id, when the caller or the cluster names it; `None`: a fresh one.
    pub(super) id: Option<String>,
}

/// The placement of a sweep given `--shard` (`flag_shard`) and `--sweep-id` (`flag_id`),
/// the flags winning over the environment (read through `env`). An error (one line) for a
/// variable that is set but not a number, a shard index out of its range, or a shard with no
/// sweep id.
pub(super) fn place(
    flag_shard: Option<Shard>,
    flag_id: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Placement, String> {
    let shard = match flag_shard {
        Some(s) => Some((s, ShardSource::Flag)),
        None => match slurm_shard(env)? {
            Some(s) => Some((s, ShardSource::Slurm)),
            None => kubernetes_shard(env)?.map(|s| (s, ShardSource::Kubernetes)),
        },
    };
    let id = match flag_id {
        Some(id) => Some(id.to_string()),
        None if shard.is_some() => Some(slurm_sweep_id(env)?.ok_or_else(|| {
            "a sweep in shards needs --sweep-id ID, the same for every shard (in a Slurm array, the array's job id is used)"
                .to_string()
        })?),
        None => None,
    };
    Ok(Placement { shard, id })
}

/// The variable `name`, set and not empty.
fn var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

/// The whole number in variable `name`, if set (set but empty is not a number).
fn number(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<usize>, String> {
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} is `{v}`, not a whole number")),
    }
}

/// The variables a Slurm job array sets besides its task's id.
const SLURM_ARRAY_VARS: [&str; 5] = [
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
];

/// The shard a Slurm array task is: its index among the array's tasks. Variables of an array
/// without its task's id are an error: every task would otherwise run every combination.
fn slurm_shard(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
    let Some(id) = number(env, "SLURM_ARRAY_TASK_ID")? else {
        return match SLURM_ARRAY_VARS.iter().find(|v| env(v).is_some()) {
            Some(other) => Err(format!(
                "{other} is set but SLURM_ARRAY_TASK_ID is not: a Slurm array sets both (give --shard I/N to choose the shard yourself)"
            )),
            None => Ok(None),
        };
    };
    let count = number(env, "SLURM_ARRAY_TASK_COUNT")?
        .ok_or("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?;
    if count == 0 {
        return Err("SLURM_ARRAY_TASK_COUNT is 0: an array has at least one task".into());
    }
    let min = number(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    let step = number(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1);
    if step == 0 {
        return Err("SLURM_ARRAY_TASK_STEP is 0: an array's step is at least 1".into());
    }
    let index = id
        .checked_sub(min)
        .filter(|d| d % step == 0)
        .map(|d| d / step)
        .filter(|&i| i < count && count > 0);
    match index {
        Some(index) => Ok(Some(Shard { index, count })),
        None => Err(format!(
            "SLURM_ARRAY_TASK_ID {id} is not one of the array's {count} task(s) from {min} by {step}: submit the array as --array=0-{} (as --emit slurm writes it)",
            count.max(1) - 1
        )),
    }
}

/// The shard a pod of a Kubernetes Indexed Job is.
fn kubernetes_shard(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
    let Some(index) = number(env, "JOB_COMPLETION_INDEX")? else {
        // Every pod of a Job that is not Indexed would run every combination.
        if env(SHARD_COUNT_ENV).is_some() {
            return Err(format!(
                "{SHARD_COUNT_ENV} is set but JOB_COMPLETION_INDEX is not: the Job must be Indexed (completionMode: Indexed, as --emit k8s writes it)"
            ));
        }
        return Ok(None);
    };
    let count = number(env, SHARD_COUNT_ENV)?.ok_or_else(|| {
        format!("JOB_COMPLETION_INDEX is set but {SHARD_COUNT_ENV} is not: set it to the Job's completions (as --emit k8s does)")
    })?;
    if index >= count {
        return Err(format!(
            "JOB_COMPLETION_INDEX {index} is not below {SHARD_COUNT_ENV} {count}"
        ));
    }
    Ok(Some(Shard { index, count }))
}

/// `slurm-<SLURM_ARRAY_JOB_ID>`, when that is set.
fn slurm_sweep_id(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    match var(env, "SLURM_ARRAY_JOB_ID") {
        None => Ok(None),
        Some(v) if v.trim().chars().all(|c| c.is_ascii_digit()) => {
            Ok(Some(format!("slurm-{}", v.trim())))
        }
        Some(v) => Err(format!("SLURM_ARRAY_JOB_ID is `{v}`, not a job id")),
    }
}

/// The seed of a shared sweep's random order when `--seed` is not given: drawn from its id
/// (FNV-1a), so that every shard draws the same order, and the runs' own seeds stay random.
pub(super) fn order_seed(sweep_id: &str) -> u64 {
    sweep_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn shards_cover_every_combination_exactly_once() {
        for total in 0..12 {
            for count in 1..8 {
                let mut seen = vec![0; total];
                for index in 0..count {
                    let shard = Shard { index, count };
                    let mine: Vec<usize> = (0..total).filter(|&t| shard.owns(t)).collect();
                    // Strided: shard sizes differ by at most one.
                    assert!(mine.len() == total / count || mine.len() == total / count + 1);
                    for t in mine {
                        seen[t] += 1;
                    }
                }
                assert!(seen.iter().all(|&n| n == 1), "{total} over {count}");
            }
        }
        // More shards than combinations: the extra shards are empty.
        let empty = Shard { index: 5, count: 6 };
        assert_eq!((0..4).filter(|&t| empty.owns(t)).count(), 0);
    }

    #[test]
    fn shard_flags_parse_or_say_why() {
        assert_eq!(parse_shard("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(parse_shard("0/1"), Ok(Shard { index: 0, count: 1 }));
        for (bad, says) in [
            ("3/2", "numbered 0 to 1"),
            ("2/2", "numbered 0 to 1"),
            ("x", "write I/N"),
            ("1/x", "write I/N"),
            ("-1/2", "write I/N"),
            ("0/0", "at least 1 shard"),
        ] {
            let e = parse_shard(bad).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{bad}: {e}");
        }
        assert!(parse_sweep_id("grid-1_a").is_ok());
        for bad in ["", "a/b", "../x", "-x", "a.b", "latest", &"x".repeat(65)] {
            assert!(parse_sweep_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_win_over_the_environment() {
        let slurm = env_of(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_JOB_ID", "77"),
            ("JOB_COMPLETION_INDEX", "1"),
            (SHARD_COUNT_ENV, "2"),
        ]);
        let from_env = place(None, None, &slurm).unwrap();
        assert_eq!(
            from_env,
            Placement {
                shard: Some((Shard { index: 3, count: 4 }, ShardSource::Slurm)),
                id: Some("slurm-77".into()),
            }
        );
        let flags = place(Some(Shard { index: 0, count: 2 }), Some("mine"), &slurm).unwrap();
        assert_eq!(
            flags,
            Placement {
                shard: Some((Shard { index: 0, count: 2 }, ShardSource::Flag)),
                id: Some("mine".into()),
            }
        );
        // A Kubernetes pod: its index, the count the manifest sets, the id of --sweep-id.
        let pod = env_of(&[("JOB_COMPLETION_INDEX", "1"), (SHARD_COUNT_ENV, "2")]);
        assert_eq!(
            place(None, Some("k"), &pod).unwrap().shard,
            Some((Shard { index: 1, count: 2 }, ShardSource::Kubernetes))
        );
        // Nothing set: every combination, a fresh id.
        assert_eq!(
            place(None, None, &env_of(&[])).unwrap(),
            Placement {
                shard: None,
                id: None
            }
        );
        // An array that starts at 1, by 2.
        let stepped = env_of(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_JOB_ID", "8"),
        ]);
        assert_eq!(
            place(None, None, &stepped).unwrap().shard,
            Some((Shard { index: 2, count: 3 }, ShardSource::Slurm))
        );
    }

    #[test]
    fn garbage_in_the_environment_is_one_line() {
        for (vars, says) in [
            (
                vec![
                    ("SLURM_ARRAY_TASK_ID", "x"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                ],
                "SLURM_ARRAY_TASK_ID is `x`",
            ),
            (
                vec![
                    ("SLURM_ARRAY_TASK_ID", "1"),
                    ("SLURM_ARRAY_TASK_COUNT", "-4"),
                ],
                "SLURM_ARRAY_TASK_COUNT is `-4`",
            ),
            (
                vec![("SLURM_ARRAY_TASK_ID", "1")],
                "SLURM_ARRAY_TASK_COUNT is not",
            ),
            (
                vec![
                    ("SLURM_ARRAY_TASK_ID", "9"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                ],
                "--array=0-3",
            ),
            (
                vec![
                    ("SLURM_ARRAY_TASK_ID", "1"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                    ("SLURM_ARRAY_JOB_ID", "12;rm"),
                ],
                "not a job id",
            ),
            (
                vec![
                    ("SLURM_ARRAY_TASK_ID", "1"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                ],
                "needs --sweep-id",
            ),
            (vec![("JOB_COMPLETION_INDEX", "0")], SHARD_COUNT_ENV),
            // Half an array or a Job that is not Indexed: each task would run every run.
            (
                vec![
                    ("SLURM_ARRAY_TASK_COUNT", "2"),
                    ("SLURM_ARRAY_JOB_ID", "91"),
                ],
                "SLURM_ARRAY_TASK_ID is not",
            ),
            (
                vec![("SLURM_ARRAY_TASK_ID", ""), ("SLURM_ARRAY_TASK_COUNT", "2")],
                "SLURM_ARRAY_TASK_ID is ``, not a whole number",
            ),
            (
                vec![
                    ("SLURM_ARRAY_TASK_ID", "0"),
                    ("SLURM_ARRAY_TASK_COUNT", "0"),
                ],
                "SLURM_ARRAY_TASK_COUNT is 0",
            ),
            (
                vec![
                    ("SLURM_ARRAY_TASK_ID", "1"),
                    ("SLURM_ARRAY_TASK_COUNT", "2"),
                    ("SLURM_ARRAY_TASK_STEP", "0"),
                ],
                "SLURM_ARRAY_TASK_STEP is 0",
            ),
            (vec![(SHARD_COUNT_ENV, "2")], "must be Indexed"),
            (
                vec![("JOB_COMPLETION_INDEX", ""), (SHARD_COUNT_ENV, "2")],
                "JOB_COMPLETION_INDEX is ``",
            ),
            (
                vec![("JOB_COMPLETION_INDEX", "2"), (SHARD_COUNT_ENV, "2")],
                "not below",
            ),
        ] {
            let e = place(None, None, &env_of(&vars)).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{vars:?}: {e}");
        }
    }

    #[test]
    fn a_shared_order_seed_is_the_ids() {
        assert_eq!(order_seed("slurm-12"), order_seed("slurm-12"));
        assert_ne!(order_seed("slurm-12"), order_seed("slurm-13"));
    }
}
