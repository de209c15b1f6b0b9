//! `watch [RUN…]`: a live terminal dashboard of running runs, from the store alone — status,
//! epoch and step, speed, ETA, the latest losses and metrics with sparklines, and the latest
//! test-while-training results. Refreshes every second until the runs end; `q` quits. With
//! nothing running it shows the newest run as it ended, with its final metrics.

use super::*;
use crate::store::followers::read_run_all_series;
use crate::store::metrics::Series;
use crate::store::progress::{progress, Progress};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};
use ratatui::Frame;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often the store is read again.
const REFRESH: Duration = Duration::from_secs(1);
/// Series shown with a sparkline, per run.
const SERIES_SHOWN: usize = 3;

/// What the dashboard shows of one run.
struct View {
    record: Record,
    progress: Option<Progress>,
    /// (name, last value, recent values), the losses first, then val/, then test/.
    series: Vec<(String, f64, Vec<f64>)>,
    /// The newest test-while-training result: (step, "name value, …").
    tested: Option<(u64, String)>,
}

impl View {
    fn running(&self) -> bool {
        self.record.status == RunStatus::Running
    }
}

/// The runs to watch: those named, else every running run, else the newest run.
fn watched(store: &Store, specs: &[String]) -> Result<Vec<String>> {
    if !specs.is_empty() {
        return specs
            .iter()
            .map(|s| Ok(store.resolve(s, |_| true)?.id))
            .collect();
    }
    let records = store.records()?;
    let running: Vec<String> = records
        .iter()
        .filter(|r| r.status == RunStatus::Running)
        .map(|r| r.id.clone())
        .collect();
    if !running.is_empty() {
        return Ok(running);
    }
    records
        .last()
        .map(|r| vec![r.id.clone()])
        .ok_or_else(|| Error::usage("no runs to watch in this store yet"))
}

fn view(store: &Store, id: &str, width: usize) -> Result<View> {
    let record = store.read(id)?;
    let dir = store.run_dir(id);
    let hyper = crate::hyper::read_flat(&dir.join(HYPERPARAMETERS_FILE));
    let progress = (record.kind == RunKind::Train)
        .then(|| progress(&store.metrics_path(id), &record, &hyper))
        .flatten();
    let all = read_run_all_series(&dir).unwrap_or_default();
    // Step losses first, then validation and test metrics; per-epoch means, the learning
    // rate and gradient norm the default backward logs, and the follower's delays last.
    let rank = |n: &str| match n.split_once('/') {
        None if n == "lr" || n == "grad_norm" => 3,
        None => 0,
        Some(("val", _)) => 1,
        Some(("test", _)) => 2,
        Some(("epoch", _)) => 3,
        Some(_) => 4,
    };
    let mut named: Vec<&(String, Series)> = all.iter().collect();
    named.sort_by_key(|(n, _)| rank(n));
    let series = named
        .iter()
        .filter_map(|(n, s)| {
            let last = *s.values.last()?;
            let recent = s.values[s.values.len().saturating_sub(width)..].to_vec();
            Some((n.clone(), last, recent))
        })
        .take(SERIES_SHOWN)
        .collect();
    let tests: Vec<&(String, Series)> =
        all.iter().filter(|(n, _)| n.starts_with("test/")).collect();
    let tested = tests
        .iter()
        .filter_map(|(_, s)| s.steps.last().copied())
        .max()
        .map(|step| {
            let values: Vec<String> = tests
                .iter()
                .filter_map(|(n, s)| {
                    let i = s.steps.iter().rposition(|&x| x == step)?;
                    Some(format!(
                        "{} {:.4}",
                        n.trim_start_matches("test/"),
                        s.values[i]
                    ))
                })
                .collect();
            (step, values.join(", "))
        });
    Ok(View {
        record,
        progress,
        series,
        tested,
    })
}

fn status_style(status: RunStatus) -> Style {
    let colour = match status {
        RunStatus::Running => Color::Cyan,
        RunStatus::Finished => Color::Green,
        RunStatus::Failed => Color::Red,
        RunStatus::Crashed => Color::Yellow,
        RunStatus::Interrupted => Color::Gray,
    };
    Style::default().fg(colour).add_modifier(Modifier::BOLD)
}

fn progress_line(v: &View) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &v.progress {
        match p.epochs {
            Some(e) => parts.push(format!("epoch {}/{e}", p.epoch + 1)),
            None => parts.push(format!("epoch {}", p.epoch + 1)),
        }
        parts.push(format!("step {}", p.step));
        if let Some(r) = p.steps_per_s.filter(|_| v.running()) {
            parts.push(format!("{r:.1} steps/s"));
        }
        if let Some(eta) = p.eta.filter(|_| v.running()) {
            parts.push(format!(
                "ETA {}",
                humantime::format_duration(Duration::from_secs(eta.round() as u64))
            ));
        }
    }
    if let Some(parent) = &v.record.parent {
        parts.push(format!("{} of {parent}", v.record.kind));
    }
    if !v.running() && v.record.ended.is_some() {
        parts.push(format!("took {}", duration(&v.record)));
    }
    if let Some(m) = &v.record.message {
        parts.push(m.clone());
    }
    parts.join(" · ")
}

/// The dashboard's first line, `width` columns at most: the runs, how many run, the key that
/// quits — never cut — and the store, shortened from its start to fit.
fn header(width: usize, runs: usize, running: usize, store: &str) -> (String, String) {
    let title = "flammable watch".to_string();
    let counted = match running {
        0 => "none running".to_string(),
        n => format!("{n} running"),
    };
    // Shorter forms for narrow terminals: the hint goes last.
    let fixed = [
        format!(" · {runs} run(s), {counted} · q quits"),
        format!(" · {running}/{runs} running · q quits"),
        " · q quits".to_string(),
    ]
    .into_iter()
    .find(|f| title.chars().count() + f.chars().count() <= width)
    .unwrap_or_default();
    let room = width.saturating_sub(title.chars().count() + fixed.chars().count() + 3);
    let chars: Vec<char> = store.chars().collect();
    let store = if chars.len() <= room {
        store.to_string()
    } else if room >= 2 {
        let tail: String = chars[chars.len() - (room - 1)..].iter().collect();
        format!("…{tail}")
    } else {
        String::new()
    };
    let rest = if store.is_empty() {
        fixed
    } else {
        format!("{fixed} · {store}")
    };
    (title, rest)
}

/// Scales values to sparkline heights (0..=100), lowest to highest of the window.
fn heights(values: &[f64]) -> Vec<u64> {
    let finite = values.iter().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, |a, &b| a.min(b));
    let hi = finite.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    values
        .iter()
        .map(|v| {
            if !v.is_finite() || hi <= lo {
                50
            } else {
                (1.0 + (v - lo) / (hi - lo) * 99.0) as u64
            }
        })
        .collect()
}

/// Lines a run's panel needs: borders, progress, a line per series, the test line.
const PANEL: u16 = 2 + 1 + SERIES_SHOWN as u16 + 1;

fn draw(frame: &mut Frame, views: &[View], store: &Store) {
    let area = frame.area();
    let running = views
        .iter()
        .filter(|v| v.record.status == RunStatus::Running)
        .count();
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let (title, rest) = header(
        area.width as usize,
        views.len(),
        running,
        &store.root().display().to_string(),
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(title, Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(rest),
        ])),
        head,
    );
    let fit = (body.height / PANEL).max(1) as usize;
    let shown = views.len().min(fit);
    let mut constraints = vec![Constraint::Length(PANEL); shown];
    constraints.push(Constraint::Min(0));
    let rows = Layout::vertical(constraints).split(body);
    for (v, row) in views.iter().zip(rows.iter()) {
        panel(frame, v, *row);
    }
    if views.len() > shown {
        if let Some(rest) = rows.last() {
            frame.render_widget(
                Paragraph::new(format!(
                    "… and {} more (a taller terminal shows them)",
                    views.len() - shown
                )),
                *rest,
            );
        }
    }
}

fn panel(frame: &mut Frame, v: &View, area: Rect) {
    let r = &v.record;
    let title = Line::from(vec![
        Span::raw(format!(" {} · {} {} · ", r.id, r.experiment, r.kind)),
        Span::styled(r.status.to_string(), status_style(r.status)),
        Span::raw(" "),
    ]);
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = vec![Constraint::Length(1); 1 + SERIES_SHOWN + 1];
    lines.push(Constraint::Min(0));
    let rows = Layout::vertical(lines).split(inner);
    frame.render_widget(Paragraph::new(progress_line(v)), rows[0]);
    if v.series.is_empty() {
        // No series (a test or eval run, or a train run before its first points): its final
        // metrics, else why there is nothing to show.
        let finals: Vec<String> = r
            .metrics
            .iter()
            .map(|(name, value)| format!("{name:<20} {value:>9.4}"))
            .collect();
        let lines: Vec<String> = if !finals.is_empty() {
            finals
        } else if v.running() {
            vec!["no metric points yet".into()]
        } else {
            vec!["no metrics recorded".into()]
        };
        for (line, row) in lines.into_iter().zip(&rows[1..=SERIES_SHOWN]) {
            frame.render_widget(Paragraph::new(line), *row);
        }
    }
    for (i, (name, last, recent)) in v.series.iter().enumerate() {
        let [label, spark] =
            Layout::horizontal([Constraint::Length(30), Constraint::Min(0)]).areas(rows[1 + i]);
        frame.render_widget(Paragraph::new(format!("{name:<20} {last:>9.4}")), label);
        let data = heights(&recent[recent.len().saturating_sub(spark.width as usize)..]);
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .max(100)
                .style(Style::default().fg(Color::Cyan)),
            spark,
        );
    }
    let test = match &v.tested {
        Some((step, values)) => format!("tested at step {step}: {values}"),
        None if r.status == RunStatus::Running && r.kind == RunKind::Train => {
            "no test results yet (test --follow, or train --test-every)".to_string()
        }
        None => String::new(),
    };
    frame.render_widget(Paragraph::new(test), rows[1 + SERIES_SHOWN]);
}

/// Runs the dashboard until the runs end (then shows them a last time) or `q`.
pub(super) fn watch(store: &Store, specs: &[String]) -> Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        return Err(Error::usage(
            "watch draws a dashboard and needs a terminal (stdout is not one): `runs` and `show` print text",
        ));
    }
    let ids = watched(store, specs)?;
    let mut terminal = ratatui::try_init()
        .map_err(|e| Error::msg(format!("cannot take over the terminal: {e}")))?;
    let outcome = (|| -> Result<()> {
        let mut ended_at: Option<Instant> = None;
        loop {
            let width = terminal.size().map(|s| s.width as usize).unwrap_or(80);
            let views: Vec<View> = ids
                .iter()
                .filter_map(|id| view(store, id, width).ok())
                .collect();
            terminal
                .draw(|f| draw(f, &views, store))
                .map_err(|e| Error::msg(format!("cannot draw: {e}")))?;
            let all_ended = views.iter().all(|v| !v.running());
            if all_ended {
                // Shown a last time for a moment, then the terminal is given back.
                let since = *ended_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(2) {
                    return Ok(());
                }
            }
            let deadline = Instant::now() + REFRESH;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if !event::poll(left).map_err(|e| Error::msg(format!("cannot read keys: {e}")))? {
                    break;
                }
                if let Event::Key(k) =
                    event::read().map_err(|e| Error::msg(format!("cannot read keys: {e}")))?
                {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if k.kind == KeyEventKind::Press
                        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c)
                    {
                        return Ok(());
                    }
                }
            }
        }
    })();
    ratatui::restore();
    outcome?;
    // What the screen showed, as text that stays in the terminal.
    for id in &ids {
        if let Ok(r) = store.read(id) {
            outln!("{} {} {} {}", r.id, r.experiment, r.kind, r.status);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_keeps_its_hint_and_shortens_the_store() {
        let long = format!("/home/someone/{}.flammable", "deep/".repeat(20));
        for width in [30, 40, 60, 80, 200] {
            let (title, rest) = header(width, 2, 1, &long);
            let line = format!("{title}{rest}");
            assert!(line.chars().count() <= width, "{width}: {line}");
            assert!(line.contains("q quits"), "{line}");
        }
        assert_eq!(header(40, 2, 1, &long).1, " · 1/2 running · q quits");
        assert!(header(60, 2, 1, &long)
            .1
            .contains("2 run(s), 1 running · q quits"));
        let (_, rest) = header(80, 1, 0, &long);
        assert!(
            rest.ends_with("deep/.flammable") && rest.contains("· …"),
            "{rest}"
        );
        assert!(rest.contains("none running"), "{rest}");
        let (_, rest) = header(80, 1, 1, "/tmp/store");
        assert_eq!(rest, " · 1 run(s), 1 running · q quits · /tmp/store");
    }

    #[test]
    fn sparkline_heights_span_the_window() {
        assert_eq!(heights(&[1.0, 2.0, 3.0]), [1, 50, 100]);
        assert_eq!(heights(&[2.0, 2.0]), [50, 50]);
        assert_eq!(heights(&[f64::NAN, 0.0, 1.0]), [50, 1, 100]);
    }
}
