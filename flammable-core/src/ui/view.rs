//! How a chart shows its series — smoothing, the x axis (step, epoch, relative or wall-clock
//! time) and the y scale — read from the query string (`smooth`, `x`, `y`), and the series
//! turned into the lines it draws: smoothed on every point, placed on the x axis, then
//! downsampled.

use super::aggregate::{self, aggregate};
use super::chart::{Band, Line, XAxis};
use super::group::GroupBy;
use super::params::from_text;
use super::series::downsample_by;
use super::smooth::Smoothing;
use crate::store::metrics::Series;
use std::str::FromStr;
use std::sync::Arc;

/// The y scale: `linear` (default) or `log`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogY(pub bool);

impl FromStr for LogY {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" | "linear" => Ok(LogY(false)),
            "log" => Ok(LogY(true)),
            _ => Err(format!("`{text}`: use linear or log")),
        }
    }
}

impl FromStr for XAxis {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" | "step" => Ok(XAxis::Step),
            "epoch" => Ok(XAxis::Epoch),
            "time" => Ok(XAxis::Time),
            "wall" => Ok(XAxis::Wall),
            _ => Err(format!("`{text}`: use step, epoch, time or wall")),
        }
    }
}

impl XAxis {
    /// The text [`FromStr`] reads.
    pub fn text(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Epoch => "epoch",
            XAxis::Time => "time",
            XAxis::Wall => "wall",
        }
    }
}

/// What a group's band spans: `minmax` (default), or `std` (the mean ± one standard
/// deviation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BandKind {
    /// From the lowest run to the highest.
    #[default]
    MinMax,
    /// The mean ± one sample standard deviation.
    Std,
}

impl FromStr for BandKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" | "minmax" => Ok(BandKind::MinMax),
            "std" => Ok(BandKind::Std),
            _ => Err(format!("`{text}`: use minmax or std")),
        }
    }
}

/// A chart's view, as its query string gives it.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct ChartView {
    /// `smooth=ema:0.6` or `mean:20` (see [`Smoothing`]).
    #[serde(deserialize_with = "from_text")]
    pub smooth: Smoothing,
    /// `x=step|epoch|time|wall`.
    #[serde(deserialize_with = "from_text")]
    pub x: XAxis,
    /// `y=linear|log`.
    #[serde(deserialize_with = "from_text")]
    pub y: LogY,
    /// `band=minmax|std`: what a group's band spans.
    #[serde(deserialize_with = "from_text")]
    pub band: BandKind,
    /// `group=`: runs charted as groups (see [`GroupBy`]; a chart has no default grouping).
    #[serde(deserialize_with = "from_text")]
    pub group: GroupBy,
}

impl ChartView {
    /// The query pairs of what differs from the default view, for links and chart sources.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.smooth != Smoothing::None {
            out.push(("smooth", self.smooth.text()));
        }
        if self.x != XAxis::Step {
            out.push(("x", self.x.text().to_string()));
        }
        if self.y.0 {
            out.push(("y", "log".to_string()));
        }
        if self.band == BandKind::Std {
            out.push(("band", "std".to_string()));
        }
        if self.group != GroupBy::Default {
            out.push(("group", self.group.text()));
        }
        out
    }
}

/// Where a run's points go across: what [`XAxis::Epoch`] and [`XAxis::Time`] need to know of
/// the run as a whole, so that all its series line up.
#[derive(Clone, Debug)]
pub enum Placement {
    /// The step.
    Step,
    /// The epochs done: `step / S`, kept within the point's own epoch (`e` to `e + 1`), where
    /// S, the steps an epoch, is the largest `step / (e + 1)` over all the run's series (a
    /// metric logged at an epoch's last step gives it exactly, and a validation metric lands
    /// at `e + 1`, beside that step's loss).
    Epoch(f64),
    /// Seconds since this time (the run's start).
    Since(f64),
    /// Seconds since the Unix epoch.
    Wall,
}

impl Placement {
    /// The placement of `axis` for a run whose series are `all`, started at `started`
    /// (seconds since the Unix epoch, when known).
    pub fn of(axis: XAxis, all: &[(String, Arc<Series>)], started: Option<f64>) -> Placement {
        match axis {
            XAxis::Step => Placement::Step,
            XAxis::Wall => Placement::Wall,
            XAxis::Time => Placement::Since(started.unwrap_or_else(|| {
                all.iter()
                    .filter_map(|(_, s)| s.times.first().copied())
                    .fold(f64::INFINITY, f64::min)
            })),
            XAxis::Epoch => {
                let per_epoch = all
                    .iter()
                    .flat_map(|(_, s)| s.epochs.iter().zip(&s.steps))
                    .map(|(&e, &step)| step as f64 / (f64::from(e) + 1.0))
                    .fold(0.0, f64::max);
                Placement::Epoch(per_epoch)
            }
        }
    }

    /// The x of point `i` of `series`.
    fn x(&self, series: &Series, i: usize) -> f64 {
        match self {
            Placement::Step => series.steps[i] as f64,
            Placement::Wall => series.times[i],
            Placement::Since(t0) => series.times[i] - t0,
            Placement::Epoch(per_epoch) => {
                let e = f64::from(series.epochs[i]);
                if *per_epoch > 0.0 {
                    (series.steps[i] as f64 / per_epoch).clamp(e, e + 1.0)
                } else {
                    e
                }
            }
        }
    }
}

/// Which x range a chart shows (all when `None`) and into how many buckets each line is
/// downsampled.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// The x range.
    pub range: Option<(f64, f64)>,
    /// Buckets per line.
    pub buckets: usize,
}

/// `values` (one per point of `series`, in its order) placed across by `placement` and
/// downsampled within `frame`: the kept points' x and values, in x order.
fn draw(
    series: &Series,
    values: &[f64],
    placement: &Placement,
    frame: Frame,
) -> (Vec<f64>, Vec<f64>) {
    let n = series.steps.len().min(values.len());
    if matches!(placement, Placement::Step) {
        // Steps go across in order: indexed directly, the common case made cheap.
        let steps = &series.steps[..n];
        let x = |i: usize| steps[i] as f64;
        let (kept, _) = downsample_by(n, x, &values[..n], frame.range, frame.buckets);
        return (
            kept.iter().map(|&i| x(i)).collect(),
            kept.iter().map(|&i| values[i]).collect(),
        );
    }
    let x = |i: usize| placement.x(series, i);
    // Points go across in x order; times of merged series (a follower's results) can be out
    // of step order, and are then sorted.
    // (Steps are in order: a series is kept so.)
    let in_order = matches!(placement, Placement::Step) || (1..n).all(|i| x(i - 1) <= x(i));
    let order: Option<Vec<usize>> = (!in_order).then(|| {
        let mut o: Vec<usize> = (0..n).collect();
        o.sort_by(|&a, &b| x(a).total_cmp(&x(b)));
        o
    });
    let at = |i: usize| order.as_ref().map_or(i, |o| o[i]);
    let permuted: Vec<f64>;
    let values: &[f64] = match &order {
        Some(o) => {
            permuted = o.iter().map(|&i| values[i]).collect();
            &permuted
        }
        None => &values[..n],
    };
    let (kept, _) = downsample_by(n, |i| x(at(i)), values, frame.range, frame.buckets);
    (
        kept.iter().map(|&i| x(at(i))).collect(),
        kept.iter().map(|&i| values[i]).collect(),
    )
}

fn line(label: &str, colour: usize, (xs, values): (Vec<f64>, Vec<f64>), faint: bool) -> Line {
    Line {
        label: label.to_string(),
        colour,
        xs,
        values,
        faint,
        band: None,
    }
}

/// The lines of one series: smoothed (when the view smooths, on every point) with the raw
/// line behind it, placed across by `placement`, downsampled within `frame`. The raw line
/// comes first (drawn underneath) and is faint.
pub fn lines(
    label: &str,
    colour: usize,
    series: &Series,
    placement: &Placement,
    view: &ChartView,
    frame: Frame,
) -> Vec<Line> {
    let raw = draw(series, &series.values, placement, frame);
    match view.smooth.apply(&series.values) {
        Some(smoothed) => vec![
            line(label, colour, raw, true),
            line(
                label,
                colour,
                draw(series, &smoothed, placement, frame),
                false,
            ),
        ],
        None => vec![line(label, colour, raw, false)],
    }
}

/// The lines of a group's series `members`: their mean at each step with a band (min–max or
/// ± one standard deviation, as the view says), each run smoothed first when the view
/// smooths (with the raw mean faint behind). Placed across by `placement` (the group's first
/// run's: steps align the runs, and time axes show that run's times).
pub fn group_lines(
    label: &str,
    colour: usize,
    members: &[Arc<Series>],
    placement: &Placement,
    view: &ChartView,
    frame: Frame,
) -> Vec<Line> {
    let raw: Vec<(&Series, &[f64])> = members
        .iter()
        .map(|s| (s.as_ref(), s.values.as_slice()))
        .collect();
    let smoothed: Option<Vec<Vec<f64>>> = (view.smooth != Smoothing::None).then(|| {
        members
            .iter()
            .map(|s| {
                view.smooth
                    .apply(&s.values)
                    .unwrap_or_else(|| s.values.clone())
            })
            .collect()
    });
    let mut out = Vec::new();
    let shown = match &smoothed {
        Some(values) => {
            let mean = aggregate::mean(&raw);
            out.push(line(
                label,
                colour,
                draw(&mean, &mean.values, placement, frame),
                true,
            ));
            aggregate(
                &members
                    .iter()
                    .zip(values)
                    .map(|(s, v)| (s.as_ref(), v.as_slice()))
                    .collect::<Vec<_>>(),
            )
        }
        None => aggregate(&raw),
    };
    let (lo, hi): (Vec<f64>, Vec<f64>) = match view.band {
        BandKind::MinMax => (shown.min.clone(), shown.max.clone()),
        BandKind::Std => shown
            .mean
            .values
            .iter()
            .zip(&shown.std)
            .map(|(m, s)| (m - s, m + s))
            .unzip(),
    };
    let mean = &shown.mean;
    let pairs = |(xs, vs): (Vec<f64>, Vec<f64>)| -> Vec<(f64, f64)> {
        xs.into_iter()
            .zip(vs)
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    let band = Band {
        upper: pairs(draw(mean, &hi, placement, frame)),
        lower: pairs(draw(mean, &lo, placement, frame)),
    };
    let mut mean_line = line(
        label,
        colour,
        draw(mean, &mean.values, placement, frame),
        false,
    );
    if members.len() > 1 {
        mean_line.band = Some(band);
    }
    out.push(mean_line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(u64, u32, f64, f64)]) -> Series {
        Series {
            steps: points.iter().map(|p| p.0).collect(),
            epochs: points.iter().map(|p| p.1).collect(),
            values: points.iter().map(|p| p.2).collect(),
            times: points.iter().map(|p| p.3).collect(),
        }
    }

    #[test]
    fn epochs_are_placed_by_how_far_into_them_a_step_is() {
        // 10 steps an epoch: training loss at steps 0..30, validation at each epoch's end.
        let loss = series(
            &(0..30)
                .map(|s| (s, (s / 10) as u32, 1.0, s as f64))
                .collect::<Vec<_>>(),
        );
        let val = series(&[(9, 0, 0.5, 9.0), (19, 1, 0.4, 19.0), (29, 2, 0.3, 29.0)]);
        let all = vec![
            ("loss".to_string(), Arc::new(loss.clone())),
            ("val/loss".to_string(), Arc::new(val.clone())),
        ];
        let p = Placement::of(XAxis::Epoch, &all, None);
        // 29 / 3 steps an epoch, from the last point.
        let per = 29.0 / 3.0;
        assert_eq!(p.x(&loss, 0), 0.0);
        assert_eq!(p.x(&loss, 15), 15.0 / per);
        assert_eq!(p.x(&val, 0), 9.0 / per);
        assert_eq!(p.x(&val, 2), 3.0, "the last epoch's end: three done");
        // One epoch: its points spread from 0 to 1.
        let one = series(&[(0, 0, 1.0, 0.0), (5, 0, 1.0, 0.0), (10, 0, 1.0, 0.0)]);
        let single = Placement::of(
            XAxis::Epoch,
            &[("loss".into(), Arc::new(one.clone()))],
            None,
        );
        assert_eq!((single.x(&one, 1), single.x(&one, 2)), (0.5, 1.0));
        let t = Placement::of(XAxis::Time, &all, Some(5.0));
        assert_eq!(t.x(&val, 1), 14.0);
    }

    #[test]
    fn a_smoothed_line_has_its_raw_line_faint_behind_it() {
        let s = series(
            &(0..1000)
                .map(|i| (i, 0, (i % 2) as f64, 0.0))
                .collect::<Vec<_>>(),
        );
        let view = ChartView {
            smooth: Smoothing::Mean(2),
            ..ChartView::default()
        };
        let all = Frame {
            range: None,
            buckets: 1000,
        };
        let l = lines("a", 0, &s, &Placement::Step, &view, all);
        assert_eq!(l.len(), 2);
        assert!(l[0].faint && !l[1].faint);
        assert_eq!(l[0].values[..3], [0.0, 1.0, 0.0]);
        assert!(l[1].values[1..].iter().all(|v| *v == 0.5));
        let zoomed = lines(
            "a",
            0,
            &s,
            &Placement::Step,
            &ChartView::default(),
            Frame {
                range: Some((10.0, 19.0)),
                buckets: 1000,
            },
        );
        assert_eq!(zoomed[0].xs.len(), 10);
        assert_eq!(zoomed[0].xs[0], 10.0);
    }

    #[test]
    fn views_read_their_parameters() {
        assert_eq!("log".parse::<LogY>(), Ok(LogY(true)));
        assert!("ln".parse::<LogY>().unwrap_err().contains("linear or log"));
        assert_eq!("wall".parse::<XAxis>(), Ok(XAxis::Wall));
        assert!("steps"
            .parse::<XAxis>()
            .unwrap_err()
            .contains("step, epoch"));
        let v = ChartView {
            smooth: Smoothing::Ema(0.6),
            x: XAxis::Epoch,
            y: LogY(true),
            band: BandKind::MinMax,
            group: GroupBy::Default,
        };
        assert_eq!(
            v.pairs(),
            [
                ("smooth", "ema:0.6".to_string()),
                ("x", "epoch".into()),
                ("y", "log".into())
            ]
        );
        assert!(ChartView::default().pairs().is_empty());
    }
}
