//! MPI across two hosts (network namespaces joined by a veth pair, see `netns`): the ranks
//! start on both hosts, and their data crosses the link between them, as the link's own
//! byte counters show.

use crate::netns::{run_bounded, TwoHosts};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Asserts that `out` succeeded; its standard output.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_rank_runs_on_its_own_host() {
    let Some(hosts) = TwoHosts::new() else {
        return;
    };
    let out = run_bounded(hosts.mpiexec().args(["-n", "2", "hostname"]), 60);
    let mut seen: Vec<String> = ok(&out).lines().map(str::to_string).collect();
    seen.sort();
    assert_eq!(&seen[..], &hosts.names()[..]);
}

/// A C program that all-reduces (sums) `argv[1]` floats, each rank's being its rank + 1, and
/// prints, per rank, its host and whether the sum came out right.
const ALL_REDUCE_C: &str = r#"
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, len;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Get_processor_name(host, &len);
    long n = atol(argv[1]);
    float *values = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) values[i] = rank + 1;
    MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    float expected = size * (size + 1) / 2.0f;
    long wrong = 0;
    for (long i = 0; i < n; i++) wrong += values[i] != expected;
    printf("rank %d of %d on %s: %ld wrong\n", rank, size, host, wrong);
    MPI_Finalize();
    return wrong != 0;
}
"#;

/// [`ALL_REDUCE_C`] compiled with `mpicc` into `dir`.
fn all_reduce_program(dir: &Path) -> PathBuf {
    let source = dir.join("all_reduce.c");
    let program = dir.join("all_reduce");
    std::fs::write(&source, ALL_REDUCE_C).unwrap();
    let out = Command::new("mpicc")
        .arg("-O2")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .output()
        .expect("mpicc runs (libmpich-dev)");
    ok(&out);
    program
}

#[test]
fn an_all_reduce_crosses_the_link() {
    let Some(hosts) = TwoHosts::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = all_reduce_program(dir.path());
    let floats: u64 = 4 << 20;
    let before = hosts.traffic();
    let out = run_bounded(
        hosts
            .mpiexec()
            .args(["-n", "2"])
            .arg(&program)
            .arg(floats.to_string()),
        120,
    );
    let crossed = hosts.traffic() - before;
    let printed = ok(&out);
    let mut lines: Vec<&str> = printed.lines().collect();
    lines.sort();
    let [a, b] = hosts.names();
    assert_eq!(
        lines,
        [
            format!("rank 0 of 2 on {a}: 0 wrong"),
            format!("rank 1 of 2 on {b}: 0 wrong")
        ],
    );
    // With two ranks, each sends the other at least its whole buffer (a reduce-scatter and an
    // all-gather of half each, or one exchange of the whole): every byte crossed the link.
    let bytes = floats * 4;
    assert!(
        crossed.tx >= bytes && crossed.rx >= bytes,
        "{crossed:?} for an all-reduce of {bytes} bytes"
    );
}
