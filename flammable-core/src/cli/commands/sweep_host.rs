//! The flags of a sweep's command line that are each host's own: where it sees the store,
//! how many threads and which device it computes on, its message, its verbosity, whether it
//! may go without a snapshot. They do not define the sweep's runs, so the shards of one sweep
//! may give them differently (a store mounted at another path, a GPU of another index), and
//! a sweep continued elsewhere gives its own.

use std::ffi::OsString;

/// The per-host flags that take a value.
const HOST_VALUED: [&str; 5] = ["--store", "--threads", "--device", "--message", "-m"];

/// The per-host switches.
const HOST_SWITCHES: [&str; 3] = ["--quiet", "-q", "--allow-no-snapshot"];

/// How many words the per-host flag starting at `word` takes (1 or 2: the flag and its
/// value), or 0 when `word` is not one.
fn host_flag_len(word: &str) -> usize {
    if HOST_SWITCHES.contains(&word) {
        return 1;
    }
    if HOST_VALUED.contains(&word) {
        return 2;
    }
    let joined = word
        .split_once('=')
        .is_some_and(|(flag, _)| HOST_VALUED.contains(&flag) || flag == "-m");
    // `-mTEXT` (the message glued to its short flag), `-qm TEXT`, `-qmTEXT`.
    let short = word.strip_prefix('-').filter(|w| !w.starts_with('-'));
    match short {
        _ if joined => 1,
        Some("qm") => 2,
        Some(w) if w.starts_with('m') || w.starts_with("qm") => 1,
        _ => 0,
    }
}

/// The flag named by a per-host flag's first word (`-m`, `--message=x` and `-mx` are one).
fn host_flag_name(word: &str) -> &str {
    let name = word.split_once('=').map_or(word, |(flag, _)| flag);
    match name {
        "-q" | "--quiet" => "--quiet",
        "--message" => "--message",
        n if n.starts_with("-m") || n.starts_with("-qm") => "--message",
        n => n,
    }
}

/// Splits `argv` into what defines the runs and the per-host flags (each with its value).
fn split(argv: &[String]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut defining = Vec::with_capacity(argv.len());
    let mut host = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let n = host_flag_len(&argv[i]);
        if n == 0 {
            defining.push(argv[i].clone());
            i += 1;
        } else {
            let end = (i + n).min(argv.len());
            host.push(argv[i..end].to_vec());
            i = end;
        }
    }
    (defining, host)
}

/// `argv` without the per-host flags: what every shard of one sweep must give alike.
pub(super) fn defining(argv: &[String]) -> Vec<String> {
    split(argv).0
}

/// The per-host flags of `argv`, with their values, in order.
pub(super) fn host_flags(argv: &[OsString]) -> Vec<OsString> {
    let text: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    split(&text)
        .1
        .into_iter()
        .flatten()
        .map(OsString::from)
        .collect()
}

/// `planned` (a run's command line, as a sweep's plan keeps it) with the per-host flags that
/// `host` gives in place of its own: a sweep continued on another host uses that host's
/// store, threads and device.
pub(super) fn with_host_flags(planned: &[String], host: &[OsString]) -> Vec<OsString> {
    let host: Vec<String> = host
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (_, given) = split(&host);
    let names: Vec<&str> = given.iter().map(|f| host_flag_name(&f[0])).collect();
    let (defining, planned_host) = split(planned);
    let mut out: Vec<OsString> = defining.into_iter().map(OsString::from).collect();
    for flag in planned_host {
        if !names.contains(&host_flag_name(&flag[0])) {
            out.extend(flag.into_iter().map(OsString::from));
        }
    }
    out.extend(given.into_iter().flatten().map(OsString::from));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn each_hosts_own_flags_do_not_define_the_runs() {
        let plain = words("train --epochs 1 --hidden 8 --lr 1e-3");
        for with in [
            "train --epochs 1 --store /tmp/s/runs --hidden 8 --lr 1e-3",
            "train --epochs 1 --store=/tmp/s/runs/ --hidden 8 --lr 1e-3",
            "train --threads 2 --epochs 1 --hidden 8 --lr 1e-3 --device cuda:1",
            "train --epochs 1 -m host-b --hidden 8 --lr 1e-3 -q",
            "train --epochs 1 -mhost-b --hidden 8 --lr 1e-3 --allow-no-snapshot",
            "train --epochs 1 -qm host-b --hidden 8 --message=x --lr 1e-3 --quiet",
        ] {
            assert_eq!(defining(&words(with)), plain, "{with}");
        }
        // What defines the runs stays, the seed included.
        let seeded = words("train --epochs 1 --seed 7 --hidden 8");
        assert_eq!(defining(&seeded), seeded);
        let host = host_flags(&[
            "train".into(),
            "--store".into(),
            "/b".into(),
            "--epochs".into(),
            "1".into(),
            "-q".into(),
        ]);
        assert_eq!(host, ["--store", "/b", "-q"]);
    }

    #[test]
    fn a_continuing_host_gives_its_own_store_and_keeps_the_rest() {
        let planned = words("train --epochs 1 --store /a -m first --lr 1e-3");
        let host: Vec<OsString> = ["--store=/b", "--threads", "2"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let out: Vec<String> = with_host_flags(&planned, &host)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            out,
            words("train --epochs 1 --lr 1e-3 -m first --store=/b --threads 2")
        );
    }
}
