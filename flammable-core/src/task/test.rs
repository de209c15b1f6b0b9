//! [`Task::test_on`]'s default body: every batch through the metrics, the values kept on the
//! device and read back once at the end; pooled metrics summed over the whole split.

use super::Task;
use crate::data::Batches;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::train::pooled::ranks::{over_ranks, TestPart};
use crate::train::pooled::{classes_of, read_totals, Finish, Pooled};
use crate::train::scalars::{read_back, Results};
use candle_core::Tensor;

/// Tests on `data`: metrics per batch stay on the device; one read-back at the end.
pub fn test_on<T: Task>(task: &T, data: &mut Batches, env: &Env) -> Result<Results> {
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<Tensor> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    // Pooled metrics: their totals, summed batch by batch on the device.
    let mut pooled: Vec<(String, Pooled)> = Vec::new();
    for (i, batch) in data.epoch(0, env.seed(), env.device())?.enumerate() {
        let batch = task
            .prepare_test(batch?, env.device())
            .map_err(|e| e.in_step("prepare_test"))?;
        let output = task
            .forward_test(&batch)
            .map_err(|e| e.in_step("forward"))?;
        let metrics = task
            .evaluate_metrics(&output, &batch)
            .map_err(|e| e.in_step("metrics"))?;
        if i == 0 {
            names = metrics.iter().map(|(n, _)| n.to_string()).collect();
            pooled = metrics
                .pooled()
                .map(|(n, p)| (n.to_string(), p.clone()))
                .collect();
        } else {
            let same = metrics
                .iter()
                .map(|(n, _)| n)
                .eq(names.iter().map(String::as_str))
                && metrics
                    .pooled()
                    .map(|(n, _)| n)
                    .eq(pooled.iter().map(|(n, _)| n.as_str()));
            if !same {
                return Err(Error::msg(
                    "evaluate_metrics returned different metrics for two batches",
                ));
            }
            for ((_, sum), (name, p)) in pooled.iter_mut().zip(metrics.pooled()) {
                sum.merge(p).map_err(|e| {
                    Error::msg(format!("metric `{name}`: totals of different shapes: {e}"))
                })?;
            }
        }
        values.extend(metrics.iter().map(|(_, t)| t.detach()));
        sizes.push(batch.len());
    }
    let flat = read_back(&values, |i| {
        format!(
            "metric `{}`",
            names.get(i % names.len().max(1)).map_or("", String::as_str)
        )
    })?;
    let mut part = TestPart {
        names,
        values: flat,
        sizes,
        totals: read_totals(&pooled)?,
    };
    // A rank's share of the split (a training of several processes): the whole split's
    // metrics from every rank's batches.
    if let (Some(world), (_, shares)) = (crate::collective::world(), data.share()) {
        if shares > 1 {
            part = over_ranks(world, part)?;
        }
    }
    let TestPart {
        names,
        values: flat,
        sizes,
        totals,
    } = part;
    let mut results = Results::new();
    for (i, name) in names.iter().enumerate() {
        let per_batch: Vec<f64> = flat.iter().skip(i).step_by(names.len()).copied().collect();
        results.insert(name.clone(), task.reduce(name, &per_batch, &sizes)?);
    }
    for (name, totals, finish) in totals {
        finish
            .check(&totals)
            .map_err(|e| Error::msg(format!("metric `{name}`: {e}")))?;
        results.insert(name.clone(), finish.value(&totals));
        if finish == Finish::Matrix {
            report_matrix(&name, &totals, env)?;
        }
    }
    Ok(results)
}

/// A confusion matrix: printed as a table (rows: the true class) and written to the run's
/// `files/<name>.csv`, its classes called by the names the run gave them
/// ([`Env::set_classes`]) when it gave one per class, else by their indices.
fn report_matrix(name: &str, totals: &[f64], env: &Env) -> Result<()> {
    let c = classes_of(totals.len());
    let named = env.classes();
    let labels: Vec<String> = if named.len() == c {
        named.to_vec()
    } else {
        (0..c).map(|i| i.to_string()).collect()
    };
    let cell = |i: usize, j: usize| format!("{:.0}", totals.get(i * c + j).copied().unwrap_or(0.0));
    let width = (0..c * c)
        .map(|k| cell(k / c, k % c).len())
        .chain(labels.iter().map(|l| l.chars().count()))
        .max()
        .unwrap_or(1)
        .max(4);
    let side = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1)
        .max(5);
    let mut table = format!(
        "{name} (rows: true class, columns: predicted)\n{:>side$}",
        ""
    );
    for label in &labels {
        table.push_str(&format!(" {label:>width$}"));
    }
    for (i, label) in labels.iter().enumerate() {
        table.push_str(&format!("\n{label:>side$}"));
        for j in 0..c {
            table.push_str(&format!(" {:>width$}", cell(i, j)));
        }
    }
    env.say(&table);
    if let Some(run) = env.run() {
        let failed = |e: &dyn std::fmt::Display| {
            Error::msg(format!("cannot write the confusion matrix `{name}`: {e}"))
        };
        let mut csv = csv::Writer::from_writer(Vec::new());
        let header = std::iter::once("true\\predicted".to_string()).chain(labels.clone());
        csv.write_record(header).map_err(|e| failed(&e))?;
        for (i, label) in labels.iter().enumerate() {
            let row = std::iter::once(label.clone()).chain((0..c).map(|j| cell(i, j)));
            csv.write_record(row).map_err(|e| failed(&e))?;
        }
        let bytes = csv.into_inner().map_err(|e| failed(&e))?;
        crate::util::atomic::write_atomic(&run.file(&format!("{name}.csv"))?, &bytes)?;
    }
    Ok(())
}
