//! Sums over the ranks of a real launcher (`mpiexec -n N collective_sums`), for the tests of
//! the collectives: every length around the shared-memory threshold and beyond one segment,
//! through a buffer (`all_reduce_sum_f32`) and through the transport's own memory
//! (`all_reduce_sum_f32_filled`: parts that cover the buffer once, sums handed back in
//! order). The values are small integers, so every order of summation gives the same exact
//! sums. Rank 0 prints `ok <backend>`; a wrong sum prints where and exits 1.
//!
//! `--wait-for FILE`: after joining (rank 0 then writes `FILE.joined`), waits until FILE
//! exists before summing.
//!
//! `--uneven`: rank 1 brings one value more than the others (4,096 against 4,095, 5,001
//! against 5,000, one past a whole segment), which must end in an error on every rank each
//! time (exit 3 after the three), not in a wait or a read past the other ranks' values.

use flammable_core::collective::{start, Collective};
use std::process::ExitCode;

/// Prints `line` to stderr in one write, so that the ranks' lines do not interleave.
fn say(line: String) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

fn value(i: usize, rank: usize) -> f32 {
    ((i * 7 + rank * 13) % 1000) as f32 - 500.0
}

fn check(world: &dyn Collective, len: usize) -> Result<(), String> {
    let (rank, size) = (world.rank(), world.size());
    let expected = |i: usize| (0..size).map(|r| value(i, r)).sum::<f32>();
    let mut values: Vec<f32> = (0..len).map(|i| value(i, rank)).collect();
    world
        .all_reduce_sum_f32(&mut values)
        .map_err(|e| e.to_string())?;
    if let Some(i) = (0..len).find(|&i| values[i] != expected(i)) {
        return Err(format!(
            "buffer of {len}: value {i} is {}, not {}",
            values[i],
            expected(i)
        ));
    }
    let mut filled = vec![0u8; len];
    let mut fill = |offset: usize, part: &mut [f32]| {
        for (j, slot) in part.iter_mut().enumerate() {
            filled[offset + j] += 1;
            *slot = value(offset + j, rank);
        }
        Ok(())
    };
    let mut next = 0;
    let mut wrong = None;
    let mut read = |offset: usize, part: &[f32]| {
        if offset != next {
            wrong.get_or_insert(format!("a part at {offset} where {next} was next"));
        }
        for (j, v) in part.iter().enumerate() {
            if *v != expected(offset + j) {
                wrong.get_or_insert(format!("value {} is {v}", offset + j));
            }
        }
        next = offset + part.len();
        Ok(())
    };
    world
        .all_reduce_sum_f32_filled(len, &mut fill, &mut read)
        .map_err(|e| e.to_string())?;
    if let Some(w) = wrong {
        return Err(format!("filled buffer of {len}: {w}"));
    }
    if next != len || filled.iter().any(|&n| n != 1) {
        return Err(format!(
            "filled buffer of {len}: parts read to {next}, not each value written once"
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let world = match start() {
        Ok(Some(world)) => world,
        Ok(None) => {
            say("error: start me under mpiexec with several processes".into());
            return ExitCode::from(2);
        }
        Err(e) => {
            say(format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    let args: Vec<String> = std::env::args().collect();
    if let Some(go) = args
        .iter()
        .position(|a| a == "--wait-for")
        .and_then(|i| args.get(i + 1))
    {
        // Every rank has joined (and made its share of the window) once rank 0 is here.
        if world.rank() == 0 {
            let _ = std::fs::write(format!("{go}.joined"), "");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !std::path::Path::new(go).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    if std::env::args().any(|a| a == "--uneven") {
        // Around the shared-memory threshold, within one segment, and at the end of one.
        for len in [4095, 5000, 1 << 22] {
            let mut values = vec![1f32; len + usize::from(world.rank() == 1)];
            match world.all_reduce_sum_f32(&mut values) {
                Ok(()) => {
                    say(format!("rank {}: uneven sums were taken", world.rank()));
                    return ExitCode::from(1);
                }
                Err(e) => say(format!("rank {}: error: {e}", world.rank())),
            }
        }
        // Every rank leaves together, after printing: a rank that ends first could end the
        // job before the others' lines reach the launcher.
        world.finalize();
        return ExitCode::from(3);
    }
    for len in [1, 100, 4095, 4096, 4097, 100_003, (1 << 22) + 7] {
        if let Err(e) = check(world, len) {
            say(format!("rank {}: {e}", world.rank()));
            return ExitCode::from(1);
        }
    }
    if world.rank() == 0 {
        println!("ok {}", world.backend());
    }
    world.finalize();
    ExitCode::SUCCESS
}
