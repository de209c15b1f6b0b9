//! Classification metrics pooled over the split: accuracy, top-k accuracy, and the scores of
//! the confusion matrix, which is counted with one scatter-add per batch.

use super::{count_dtype, ratio, Average, Finish, Pooled, Score};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor, D};

/// The most classes a confusion matrix takes: its cells are indexed in u32.
const MAX_MATRIX_CLASSES: usize = 65_535;

/// Scores (examples × classes) and their labels, checked and read for counting.
struct Judged {
    /// The scores.
    logits: Tensor,
    /// The labels as u32, one per example.
    labels: Tensor,
    /// 1 where the label is one of the classes, 0 where it is outside (u8).
    inside: Tensor,
    /// The labels with those outside replaced by 0, safe to index with.
    safe_labels: Tensor,
    classes: usize,
}

impl Judged {
    fn new(logits: &Tensor, labels: &Tensor) -> Result<Judged> {
        let classes = match logits.dims() {
            [_, c] => *c,
            dims => {
                return Err(Error::msg(format!(
                    "a classification metric takes scores of shape (examples, classes); these have shape {dims:?}"
                )))
            }
        };
        if labels.dtype().is_float() {
            // Numbers to predict, not classes: truncating them to classes would score nonsense.
            return Err(Error::msg(format!(
                "a classification metric takes class labels of an integer dtype (u8, u32, i64); these are {:?} (for values to predict, use mse, rmse, mae or r2)",
                labels.dtype()
            )));
        }
        // A negative i64 label becomes a large u32, outside the classes like any other.
        let labels = labels.flatten_all()?.to_dtype(DType::U32)?;
        if labels.dim(0)? != logits.dim(0)? {
            return Err(Error::msg(format!(
                "{} labels for {} examples",
                labels.dim(0)?,
                logits.dim(0)?
            )));
        }
        let inside = labels.lt(classes as f64)?;
        let safe_labels = inside.where_cond(&labels, &labels.zeros_like()?)?;
        Ok(Judged {
            logits: logits.clone(),
            labels,
            inside,
            safe_labels,
            classes,
        })
    }

    /// `[hits, examples, labels outside the classes]` as totals of a ratio; `hits` of an
    /// example whose scores hold a NaN do not count.
    fn ratio(&self, hits: &Tensor) -> Result<Pooled> {
        let dtype = count_dtype(self.logits.device());
        // NaN is the one value unequal to itself.
        let finite = self
            .logits
            .ne(&self.logits)?
            .to_dtype(DType::F32)?
            .max(D::Minus1)?
            .eq(0.0)?;
        let counted = |t: &Tensor| t.to_dtype(dtype)?.sum_all();
        let hits = (hits.to_dtype(dtype)? * finite.to_dtype(dtype)?)?.sum_all()?;
        let outside = counted(&self.inside.eq(0.0)?)?;
        let examples =
            Tensor::new(self.labels.dim(0)? as f64, self.logits.device())?.to_dtype(dtype)?;
        Ok(Pooled {
            totals: Tensor::stack(&[hits, examples, outside], 0)?,
            finish: Finish::Ratio,
        })
    }
}

/// The fraction of examples whose highest score is their label (the first of equal highest
/// scores; an example with a NaN score is a miss).
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<Pooled> {
    let j = Judged::new(logits, labels)?;
    let predicted = logits.argmax(D::Minus1)?.to_dtype(DType::U32)?;
    j.ratio(&predicted.eq(&j.labels)?)
}

/// The fraction of examples whose label is among their `k` highest scores. A score equal to
/// the label's counts as higher (all-equal scores are a miss unless `k` ≥ the classes), and
/// an example with a NaN score is a miss.
pub fn top_k_accuracy(logits: &Tensor, labels: &Tensor, k: usize) -> Result<Pooled> {
    let j = Judged::new(logits, labels)?;
    let dtype = DType::F32;
    let own = logits
        .to_dtype(dtype)?
        .gather(&j.safe_labels.unsqueeze(1)?, 1)?;
    // The classes scoring at least the label's, itself included: none when its score is NaN.
    let at_least = logits
        .to_dtype(dtype)?
        .broadcast_ge(&own)?
        .to_dtype(dtype)?
        .sum(1)?;
    let hits = (at_least.ge(1.0)? * at_least.le(k as f64)?)?;
    j.ratio(&(hits * &j.inside)?)
}

/// The confusion matrix's counts of this batch (rows: the true class, columns: the
/// predicted one), flattened, then the number of labels outside the classes: one scatter-add
/// of the examples into `classes² + 1` integer cells.
fn confusion_counts(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (index, cells) = cells_of(logits, labels)?;
    let dtype = count_dtype(logits.device());
    let ones = Tensor::ones(index.dim(0)?, dtype, logits.device())?;
    let counts = Tensor::zeros(cells, dtype, logits.device())?;
    Ok(counts.index_add(&index, &ones, 0)?)
}

/// Each example's cell of the flattened confusion matrix (`label × classes + predicted`,
/// exact in u32; a label outside the classes goes to the last cell, which `Finish::check`
/// reads) and the number of cells.
fn cells_of(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
    let j = Judged::new(logits, labels)?;
    let c = j.classes;
    if c > MAX_MATRIX_CLASSES {
        return Err(Error::msg(format!(
            "a confusion matrix of {c} classes would have {} cells; it takes at most {MAX_MATRIX_CLASSES} classes",
            c * c
        )));
    }
    let predicted = logits.argmax(D::Minus1)?.to_dtype(DType::U32)?;
    let cell = ((&j.safe_labels * c as f64)? + predicted)?;
    let last = Tensor::full((c * c) as u32, cell.dims(), cell.device())?;
    Ok((j.inside.where_cond(&cell, &last)?, c * c + 1))
}

/// Precision, recall or F1 over the whole split, macro- or micro-averaged.
pub fn score(logits: &Tensor, labels: &Tensor, score: Score, average: Average) -> Result<Pooled> {
    Ok(Pooled {
        totals: confusion_counts(logits, labels)?,
        finish: Finish::Score(score, average),
    })
}

/// F1 averaged over classes.
pub fn f1_macro(logits: &Tensor, labels: &Tensor) -> Result<Pooled> {
    score(logits, labels, Score::F1, Average::Macro)
}

/// The confusion matrix over the whole split: the test prints it as a table and writes it to
/// the run's `files/<name>.csv`; its value in the results is the accuracy.
pub fn confusion(logits: &Tensor, labels: &Tensor) -> Result<Pooled> {
    Ok(Pooled {
        totals: confusion_counts(logits, labels)?,
        finish: Finish::Matrix,
    })
}

/// A score of the confusion matrix in totals `t` (its cells, then the labels outside).
pub(super) fn score_value(t: &[f64], score: Score, average: Average) -> f64 {
    let c = super::classes_of(t.len());
    let m = |truth: usize, pred: usize| t.get(truth * c + pred).copied().unwrap_or(0.0);
    let tp: Vec<f64> = (0..c).map(|k| m(k, k)).collect();
    let predicted: Vec<f64> = (0..c).map(|k| (0..c).map(|i| m(i, k)).sum()).collect();
    let actual: Vec<f64> = (0..c).map(|k| (0..c).map(|j| m(k, j)).sum()).collect();
    let f = |tp: f64, predicted: f64, actual: f64| {
        let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
        match score {
            Score::Precision => p,
            Score::Recall => r,
            Score::F1 => ratio(2.0 * p * r, p + r),
        }
    };
    match average {
        Average::Macro => {
            // Classes absent from both truth and predictions do not count.
            let present: Vec<usize> = (0..c).filter(|&k| actual[k] + predicted[k] > 0.0).collect();
            ratio(
                present
                    .iter()
                    .map(|&k| f(tp[k], predicted[k], actual[k]))
                    .sum(),
                present.len() as f64,
            )
        }
        Average::Micro => f(tp.iter().sum(), predicted.iter().sum(), actual.iter().sum()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{pooled_value, totals};
    use super::*;
    use candle_core::Device;

    fn t2(v: &[[f32; 3]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (v.len(), 3), &Device::Cpu).unwrap()
    }

    fn value(p: &Pooled) -> f64 {
        p.finish.value(&totals(p))
    }

    #[test]
    fn classification_scores_from_the_confusion_matrix() {
        // Predictions 0, 1, 1, 2, 0 for labels 0, 1, 2, 2, 1.
        let logits = t2(&[
            [3., 1., 0.],
            [0., 2., 1.],
            [0., 5., 1.],
            [0., 1., 4.],
            [2., 1., 0.],
        ]);
        let labels = Tensor::new(&[0u32, 1, 2, 2, 1], &Device::Cpu).unwrap();
        let acc = accuracy(&logits, &labels).unwrap();
        assert_eq!(value(&acc), 3.0 / 5.0);
        let m = confusion(&logits, &labels).unwrap();
        assert_eq!(totals(&m), [1., 0., 0., 1., 1., 0., 0., 1., 1., 0.]);
        assert_eq!(m.totals.dtype(), DType::I64);
        assert_eq!(value(&m), 3.0 / 5.0);
        assert!(m.finish.check(&totals(&m)).is_ok());
        // Per class: precision 1/2, 1/2, 1; recall 1, 1/2, 1/2; F1 2/3, 1/2, 2/3.
        let f = |score, avg| value(&self::score(&logits, &labels, score, avg).unwrap());
        assert!((f(Score::F1, Average::Macro) - (2. / 3. + 0.5 + 2. / 3.) / 3.).abs() < 1e-12);
        assert!((f(Score::Precision, Average::Macro) - 2. / 3.).abs() < 1e-12);
        assert!((f(Score::F1, Average::Micro) - 0.6).abs() < 1e-12);
        let top2 = top_k_accuracy(&logits, &labels, 2).unwrap();
        assert_eq!(value(&top2), 1.0);
        // Values to predict are not classes.
        let values = labels.to_dtype(DType::F32).unwrap();
        let refused = f1_macro(&logits, &values).unwrap_err().to_string();
        assert!(
            refused.contains("class labels of an integer dtype"),
            "{refused}"
        );
    }

    #[test]
    fn classes_absent_from_the_split_are_left_out_of_macro_averages() {
        let f1 = |logits: &[[f32; 4]], labels: &[u32]| {
            let flat: Vec<f32> = logits.iter().flatten().copied().collect();
            let logits = Tensor::from_vec(flat, (logits.len(), 4), &Device::Cpu).unwrap();
            let labels = Tensor::new(labels, &Device::Cpu).unwrap();
            value(&score(&logits, &labels, Score::F1, Average::Macro).unwrap())
        };
        let (a, b) = ([1f32, 0., 0., 0.], [0f32, 1., 0., 0.]);
        // Predicted 0, 1, 0, 0 for labels 0, 1, 1, 0: classes 2 and 3 are in neither, so the
        // average is over classes 0 (F1 0.8) and 1 (2/3), not over four.
        let macro_f1 = f1(&[a, b, a, a], &[0, 1, 1, 0]);
        assert!(
            (macro_f1 - (0.8 + 2. / 3.) / 2.).abs() < 1e-12,
            "{macro_f1}"
        );
        // A class in the labels that is never predicted counts, with F1 0.
        let macro_f1 = f1(&[a, a], &[0, 2]);
        assert!((macro_f1 - (2. / 3.) / 2.).abs() < 1e-12, "{macro_f1}");
    }

    #[test]
    fn labels_beyond_the_classes_are_refused_by_every_metric() {
        let logits = t2(&[[3., 1., 0.], [0., 2., 1.], [0., 5., 1.], [0., 1., 4.]]);
        let beyond = Tensor::new(&[0u32, 1, 7, 2], &Device::Cpu).unwrap();
        for p in [
            confusion(&logits, &beyond).unwrap(),
            f1_macro(&logits, &beyond).unwrap(),
        ] {
            let refused = p.finish.check(&totals(&p)).unwrap_err().to_string();
            assert_eq!(refused, "1 label(s) outside the classes 0..3 of the scores");
        }
        let negative = Tensor::new(&[0i64, -1, 1, 2], &Device::Cpu).unwrap();
        for p in [
            accuracy(&logits, &beyond).unwrap(),
            top_k_accuracy(&logits, &beyond, 2).unwrap(),
            top_k_accuracy(&logits, &negative, 5).unwrap(),
        ] {
            let refused = p.finish.check(&totals(&p)).unwrap_err().to_string();
            assert_eq!(refused, "1 label(s) outside the classes of the scores");
        }
    }

    #[test]
    fn ties_and_nan_are_not_hits() {
        // Every score equal: no class is in the top 2 of 3 (and all are in the top 3).
        let equal = Tensor::ones((4, 3), DType::F32, &Device::Cpu).unwrap();
        let nan = (equal.clone() * f64::NAN).unwrap();
        let labels = Tensor::new(&[0u32, 1, 2, 1], &Device::Cpu).unwrap();
        let top = |s: &Tensor, k| value(&top_k_accuracy(s, &labels, k).unwrap());
        assert_eq!(top(&equal, 2), 0.0);
        assert_eq!(top(&equal, 3), 1.0);
        assert_eq!(top(&nan, 2), 0.0);
        assert_eq!(top(&nan, 5), 0.0);
        assert_eq!(value(&accuracy(&nan, &labels).unwrap()), 0.0);
        // One NaN in a row makes that row a miss, even for its label's class.
        let one_nan = t2(&[[5., f32::NAN, 0.], [0., 5., 1.]]);
        let two = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        assert_eq!(value(&accuracy(&one_nan, &two).unwrap()), 0.5);
        assert_eq!(value(&top_k_accuracy(&one_nan, &two, 2).unwrap()), 0.5);
        // A tie with a lower score still leaves the label in the top 2.
        let tied = t2(&[[2., 2., 1.]]);
        let first = Tensor::new(&[1u32], &Device::Cpu).unwrap();
        assert_eq!(value(&top_k_accuracy(&tied, &first, 2).unwrap()), 1.0);
    }

    #[test]
    fn cells_are_exact_beyond_what_f32_indexes() {
        // 5000 classes: cells past 2²⁴ are not all f32 numbers (24,999,997 would round to
        // 24,999,996, the next cell's index), and merged. In u32 they are exact.
        let c = 5000;
        let mut scores = vec![0f32; 3 * c];
        for (row, predicted) in [4997, 4998, 1].into_iter().enumerate() {
            scores[row * c + predicted] = 1.0;
        }
        let scores = Tensor::from_vec(scores, (3, c), &Device::Cpu).unwrap();
        let labels = Tensor::new(&[4999u32, 4999, 5000], &Device::Cpu).unwrap();
        let (index, cells) = cells_of(&scores, &labels).unwrap();
        assert_eq!(cells, 25_000_001);
        assert_eq!(
            index.to_vec1::<u32>().unwrap(),
            [24_999_997, 24_999_998, 25_000_000]
        );
        let too_many = Tensor::zeros((1, 65_536), DType::F32, &Device::Cpu).unwrap();
        let refused = confusion(&too_many, &Tensor::new(&[0u32], &Device::Cpu).unwrap());
        assert!(refused
            .unwrap_err()
            .to_string()
            .contains("at most 65535 classes"));
    }

    #[test]
    fn a_thousand_classes_count_exactly_in_a_matrix_of_a_million_cells() {
        // Example i is of class i % 1000, predicted (i * 7) % 1000: the cells it lands in are
        // known without the matrix; pooled over three batches.
        let (c, n) = (1000usize, 2500usize);
        let batch = |range: std::ops::Range<usize>| {
            let mut scores = vec![0f32; range.len() * c];
            for (row, i) in range.clone().enumerate() {
                scores[row * c + (i * 7) % c] = 1.0;
            }
            let labels: Vec<u32> = range.clone().map(|i| (i % c) as u32).collect();
            let len = range.len();
            let s = Tensor::from_vec(scores, (len, c), &Device::Cpu).unwrap();
            confusion(&s, &Tensor::from_vec(labels, len, &Device::Cpu).unwrap()).unwrap()
        };
        let parts = [batch(0..1000), batch(1000..1700), batch(1700..n)];
        let mut sum = parts[0].clone();
        sum.merge(&parts[1]).unwrap();
        sum.merge(&parts[2]).unwrap();
        let t = totals(&sum);
        assert_eq!(t.len(), c * c + 1);
        let mut expected = vec![0f64; c * c + 1];
        for i in 0..n {
            expected[(i % c) * c + (i * 7) % c] += 1.0;
        }
        assert_eq!(t, expected);
        // Right only where 7i ≡ i (mod 1000), i.e. 6i ≡ 0: i a multiple of 500.
        assert_eq!(pooled_value(&parts), 5.0 / n as f64);
    }
}
