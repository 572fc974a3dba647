//! The SVG timeline: layout constants, the axis, rows, marks and the legend.

use std::fmt::Write as _;
use std::time::Duration;

use super::{secs, Finish, Lane, State, Trace, Wait};

/// The picture's width in pixels.
const WIDTH: f64 = 1000.0;
/// Rows drawn at most; a larger trace draws an evenly spaced sample of its tasks.
pub(super) const MAX_ROWS: usize = 100;
/// Characters of a name shown as its row's label.
const LABEL_CHARS: usize = 24;
/// Space for the finish marks and timer arrows right of the plot.
const RIGHT_MARGIN: f64 = 28.0;
/// Where the rows start.
const TOP: f64 = 44.0;

/// Colors: light for waiting (most of a row), strong for what happens at an instant.
const READY: &str = "#ffd54f";
const RUNNING: &str = "#212121";
const TIMER: &str = "#9dc3e6";
const IO: &str = "#a8d5a2";
const TASK: &str = "#c9b3e0";
const GATHER: &str = "#f5b7a5";
const TASKS: &str = "#f2c4e0";
const OTHER: &str = "#cfcfcf";
const DUE: &str = "#1f4e9a";
const DONE: &str = "#2e9e44";
const CANCELLED: &str = "#d62728";
const PANICKED: &str = "#b8008a";

fn color(state: State) -> &'static str {
    match state {
        State::Ready => READY,
        State::Running => RUNNING,
        State::Waiting(Wait::Timer) => TIMER,
        State::Waiting(Wait::Io) => IO,
        State::Waiting(Wait::Task) => TASK,
        State::Waiting(Wait::Gather) => GATHER,
        State::Waiting(Wait::Tasks) => TASKS,
        State::Waiting(Wait::Other) => OTHER,
    }
}

/// Maps loop time to x.
struct Scale {
    x0: f64,
    width: f64,
    end: Duration,
}

impl Scale {
    fn x(&self, t: Duration) -> f64 {
        self.x0 + self.width * (t.as_secs_f64() / self.end.as_secs_f64()).min(1.0)
    }
}

/// Returns a tick step of 1, 2 or 5 × 10^k seconds giving at most about 10 ticks up to `end`.
fn tick_step(end: f64) -> f64 {
    let raw = end / 10.0;
    let magnitude = 10f64.powi(raw.log10().floor() as i32);
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

/// Returns the decimals a tick label of this step needs.
fn tick_decimals(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    }
}

/// Returns the end of the time axis: past the last event and the timers due soon after it,
/// rounded up to a tick.
fn axis_end(trace: &Trace, lanes: &[Lane]) -> Duration {
    let last = trace.end();
    // A deadline shortly after the last event is worth seeing (phase 2's 10 s timer, cut
    // short at 6 s); one a day later would squash the run into a sliver.
    let due = lanes.iter().flat_map(|l| l.deadlines.iter().copied()).filter(|d| *d <= last * 2).max();
    let end = last.max(due.unwrap_or(Duration::ZERO));
    if end.is_zero() {
        return Duration::from_secs(1);
    }
    let step = tick_step(end.as_secs_f64());
    Duration::from_secs_f64((end.as_secs_f64() / step - 1e-9).ceil() * step)
}

/// Escapes text for XML content or an attribute; characters XML 1.0 cannot hold become
/// U+FFFD (controls other than tab and newline, U+FFFE, U+FFFF).
pub(super) fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Shortens a label to `LABEL_CHARS` characters, with an ellipsis.
fn short(name: &str) -> String {
    if name.chars().count() <= LABEL_CHARS {
        name.to_string()
    } else {
        name.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
    }
}

/// Picks the lanes to draw: all, or `MAX_ROWS` evenly spaced ones.
fn sample(lanes: Vec<Lane>) -> (Vec<Lane>, usize) {
    let total = lanes.len();
    if total <= MAX_ROWS {
        return (lanes, total);
    }
    let keep: Vec<usize> = (0..MAX_ROWS).map(|i| i * total / MAX_ROWS).collect();
    let picked = lanes.into_iter().enumerate().filter(|(i, _)| keep.binary_search(i).is_ok()).map(|(_, l)| l);
    (picked.collect(), total)
}

/// Where things go: the time scale and the rows' size.
struct Layout {
    scale: Scale,
    row_h: f64,
    font: f64,
}

pub(super) fn render(trace: &Trace) -> String {
    let lanes = trace.lanes();
    let end = axis_end(trace, &lanes);
    let (lanes, total) = sample(lanes);
    let rows = lanes.len();
    let row_h = match rows {
        0..=20 => 24.0,
        21..=40 => 18.0,
        _ => 12.0,
    };
    let font = if row_h >= 18.0 { 12.0 } else { 9.0 };
    let label_chars = lanes.iter().map(|l| short(&l.name).chars().count()).max().unwrap_or(4).max(4);
    let label_w = (label_chars as f64 * font * 0.62 + 16.0).clamp(60.0, 220.0);
    let layout = Layout { scale: Scale { x0: label_w, width: WIDTH - label_w - RIGHT_MARGIN, end }, row_h, font };
    let axis_y = TOP + rows as f64 * row_h + 6.0;
    let legend_y = axis_y + 52.0;
    let note_y = legend_y + 44.0;
    let height = if total > rows || rows == 0 { note_y + 14.0 } else { legend_y + 34.0 };

    let mut out = String::new();
    let _ = write!(out, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}""#);
    let _ = writeln!(
        out,
        r#" viewBox="0 0 {WIDTH} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    let title = format!(
        "aioloop trace: {total} task{}, {} events, {} of loop time",
        if total == 1 { "" } else { "s" },
        trace.events().len(),
        secs(trace.end())
    );
    let _ = writeln!(out, r#"<text x="12" y="24" font-size="14" font-weight="bold">{}</text>"#, xml(&title));
    // Every other row shaded, under the grid and the bars.
    for i in (1..rows).step_by(2) {
        let y = TOP + i as f64 * row_h;
        let _ = writeln!(out, r##"<rect x="0" y="{y:.1}" width="{WIDTH}" height="{row_h:.1}" fill="#f4f4f4"/>"##);
    }
    axis(&mut out, &layout, TOP - 4.0, axis_y);
    // Runs added with Trace::append: a dashed line where each begins, and their numbers.
    if !trace.runs().is_empty() && rows > 0 {
        for (k, &at) in [Duration::ZERO].iter().chain(trace.runs()).enumerate() {
            let x = layout.scale.x(at);
            if k > 0 {
                let y1 = TOP - 16.0;
                let _ = write!(out, r#"<line x1="{x:.1}" y1="{y1:.1}" x2="{x:.1}" y2="{axis_y:.1}""#);
                let _ = writeln!(out, r##" stroke="#555555" stroke-dasharray="6,3"/>"##);
            }
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" font-size="{}" fill="#555555">run {}</text>"##,
                x + 4.0,
                TOP - 6.0,
                layout.font,
                k + 1
            );
        }
    }
    if trace.end() < end && rows > 0 {
        // The axis goes on to show timers due after the run: mark where the run ended.
        let x = layout.scale.x(trace.end());
        let y1 = TOP - 8.0;
        let _ = write!(out, r#"<line x1="{x:.1}" y1="{y1:.1}" x2="{x:.1}" y2="{axis_y:.1}""#);
        let _ = writeln!(
            out,
            r##" stroke="#888888" stroke-dasharray="4,3"><title>the trace ends at {}</title></line>"##,
            secs(trace.end())
        );
    }
    for (i, lane) in lanes.iter().enumerate() {
        row(&mut out, lane, &layout, TOP + i as f64 * row_h);
    }
    legend(&mut out, legend_y);
    let note = if rows == 0 {
        "No events: was the loop built with .trace(true)?".to_string()
    } else if total > rows {
        format!(
            "Showing {rows} of {total} tasks, evenly spaced in spawn order; \
             the JSON export (Trace::to_chrome_json) has every task."
        )
    } else {
        String::new()
    };
    if !note.is_empty() {
        let _ = writeln!(out, r##"<text x="12" y="{note_y:.1}" fill="#555">{}</text>"##, xml(&note));
    }
    out.push_str("</svg>\n");
    out
}

/// Draws the time axis at `bottom`, with grid lines up to `top`.
fn axis(out: &mut String, layout: &Layout, top: f64, bottom: f64) {
    let (scale, font) = (&layout.scale, layout.font);
    let end = scale.end.as_secs_f64();
    let step = tick_step(end);
    let decimals = tick_decimals(step);
    let x1 = scale.x0 + scale.width;
    let _ =
        writeln!(out, r##"<line x1="{:.1}" y1="{bottom:.1}" x2="{x1:.1}" y2="{bottom:.1}" stroke="#444"/>"##, scale.x0);
    let ticks = (end / step + 1e-6).floor() as u64;
    for k in 0..=ticks {
        let t = k as f64 * step;
        let x = scale.x(Duration::from_secs_f64(t));
        let _ = writeln!(out, r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#e4e4e4"/>"##);
        let (tick_end, label_y) = (bottom + 5.0, bottom + 18.0);
        let _ = write!(out, r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{tick_end:.1}" stroke="#444"/>"##);
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{label_y:.1}" text-anchor="middle" font-size="{font}">{t:.decimals$}s</text>"#
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="{font}" fill="#555">loop time</text>"##,
        scale.x0 + scale.width / 2.0,
        bottom + 33.0
    );
}

/// Returns a timer-deadline tick: a small triangle above the bar and a line through it.
fn due_tick(x: f64, bar_y: f64, bar_h: f64) -> String {
    format!(
        r#"<path d="M{:.1},{:.1} h6 l-3,4 z M{x:.1},{:.1} v{:.1}" fill="{DUE}" stroke="{DUE}" stroke-width="1.5"/>"#,
        x - 3.0,
        bar_y - 5.0,
        bar_y - 1.0,
        bar_h + 2.0
    )
}

/// Returns the mark of a task's end, starting at `x`, centered on `mid`, of radius `r`.
fn finish_mark(how: Finish, x: f64, mid: f64, r: f64) -> String {
    match how {
        Finish::Done => format!(
            r##"<circle cx="{:.1}" cy="{mid:.1}" r="{:.1}" fill="{DONE}" stroke="#ffffff" stroke-width="1"/>"##,
            x + r * 0.75,
            r * 0.75
        ),
        Finish::Cancelled => {
            let (top, bottom, d) = (mid - r, mid + r, 2.0 * r);
            format!(
                r#"<path d="M{x:.1},{top:.1} l{d:.1},{d:.1} M{x:.1},{bottom:.1} l{d:.1},-{d:.1}" {}/>"#,
                format_args!(r#"stroke="{CANCELLED}" stroke-width="2.5" stroke-linecap="round""#)
            )
        }
        Finish::Panicked => {
            let (left, top) = (x + r, mid - r);
            format!(
                r##"<path d="M{left:.1},{top:.1} l{r:.1},{r:.1} l-{r:.1},{r:.1} l-{r:.1},-{r:.1} z" {}/>"##,
                format_args!(r##"fill="{PANICKED}" stroke="#ffffff" stroke-width="1""##)
            )
        }
    }
}

/// A run of same-state segments drawn as one rect.
struct Bar {
    x0: f64,
    x1: f64,
    state: State,
    start: Duration,
    end: Duration,
    /// How many segments it covers.
    count: usize,
    /// What the first one waited on.
    on: Option<String>,
}

/// Draws one task's row: its label, ready and waiting bars, polls, timer deadlines and end.
fn row(out: &mut String, lane: &Lane, layout: &Layout, y: f64) {
    let (scale, h, font) = (&layout.scale, layout.row_h, layout.font);
    let bar_h = (h * 0.6).round();
    let bar_y = y + (h - bar_h) / 2.0;
    let mid = y + h / 2.0;
    let name = xml(&lane.name);
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="{font}"><title>{name} (id {})</title>{}</text>"#,
        scale.x0 - 8.0,
        mid + font * 0.35,
        lane.task,
        xml(&short(&lane.name))
    );
    // Ready and waiting stretches, merged with the previous one when of the same state and
    // less than half a pixel apart: a task that waits on timers again and again is one bar
    // with poll marks on it, and a row costs at most a rect per pixel.
    let mut bars: Vec<Bar> = Vec::new();
    for s in lane.segments.iter().filter(|s| s.state != State::Running) {
        let (x0, x1) = (scale.x(s.start), scale.x(s.end));
        if x1 - x0 < 0.05 {
            continue;
        }
        match bars.last_mut() {
            Some(last) if last.state == s.state && x0 - last.x1 < 0.5 => {
                last.x1 = x1;
                last.end = s.end;
                last.count += 1;
            }
            _ => bars.push(Bar { x0, x1, state: s.state, start: s.start, end: s.end, count: 1, on: s.on.clone() }),
        }
    }
    for b in &bars {
        let what = match (&b.on, b.count) {
            (Some(on), 1) => format!("waiting on {on}"),
            (_, 1) => b.state.label().to_string(),
            (_, n) => format!("{} ({n} times)", b.state.label()),
        };
        let (x, width, fill) = (b.x0, b.x1 - b.x0, color(b.state));
        let _ = write!(out, r#"<rect x="{x:.2}" y="{bar_y:.1}" width="{width:.2}" height="{bar_h:.1}" fill="{fill}">"#);
        let _ = writeln!(out, "<title>{name}: {}, {} to {}</title></rect>", xml(&what), secs(b.start), secs(b.end));
    }
    // Polls: at least 1.5 px wide, so a zero-length poll (virtual time) stays visible;
    // polls that would overlap share a mark.
    let mut marks: Vec<(f64, f64, usize, Duration, Duration)> = Vec::new();
    for s in lane.segments.iter().filter(|s| s.state == State::Running) {
        let (x0, x1) = (scale.x(s.start) - 0.75, scale.x(s.end).max(scale.x(s.start) + 0.75));
        match marks.last_mut() {
            Some(last) if x0 <= last.1 => {
                last.1 = last.1.max(x1);
                last.2 += 1;
                last.4 = s.end;
            }
            _ => marks.push((x0, x1, 1, s.start, s.end)),
        }
    }
    for (x0, x1, n, start, end) in marks {
        let what = if n == 1 { "poll".to_string() } else { format!("{n} polls") };
        let (y, width, height) = (bar_y - 2.0, x1 - x0, bar_h + 4.0);
        let _ =
            write!(out, r#"<rect x="{x0:.2}" y="{y:.1}" width="{width:.2}" height="{height:.1}" fill="{RUNNING}">"#);
        let _ = writeln!(out, "<title>{name}: {what}, {} to {}</title></rect>", secs(start), secs(end));
    }
    // Timer deadlines: a tick, at most one per 3 px; an arrow at the right edge for those
    // past the end of the axis.
    let mut due: Vec<Duration> = lane.deadlines.clone();
    due.sort();
    let mut last_x = f64::NEG_INFINITY;
    let mut later = Vec::new();
    for d in due {
        if d > scale.end {
            later.push(d);
            continue;
        }
        let x = scale.x(d);
        if x - last_x >= 3.0 {
            last_x = x;
            let _ =
                writeln!(out, "<g><title>{name}: timer due at {}</title>{}</g>", secs(d), due_tick(x, bar_y, bar_h));
        }
    }
    if let (Some(first), Some(last)) = (later.first(), later.last()) {
        let x = scale.x0 + scale.width + 4.0;
        let when = if later.len() == 1 { secs(*first) } else { format!("{} to {}", secs(*first), secs(*last)) };
        let y = mid - 4.0;
        let _ = write!(out, r#"<path d="M{x:.1},{y:.1} l6,4 l-6,4 z" fill="{DUE}">"#);
        let _ = writeln!(out, "<title>{name}: timer due at {when}, after the end of the axis</title></path>");
    }
    if let Some((at, how)) = lane.finish {
        let r = (bar_h / 2.0).min(6.0);
        let _ = writeln!(
            out,
            "<g><title>{name}: {} at {}</title>{}</g>",
            how.label(),
            secs(at),
            finish_mark(how, scale.x(at) + 1.0, mid, r)
        );
    }
}

/// Draws the legend in two lines from `y`: the state colors, then the marks.
fn legend(out: &mut String, y: f64) {
    let swatches = [
        ("ready", READY),
        ("running (a poll)", RUNNING),
        ("waiting on a timer", TIMER),
        ("on I/O", IO),
        ("on a task", TASK),
        ("on a gather", GATHER),
        ("on tasks", TASKS),
        ("on something else", OTHER),
    ];
    let mut x = 12.0;
    for (label, fill) in swatches {
        let (top, text_x) = (y - 10.0, x + 23.0);
        let _ = write!(out, r##"<rect x="{x:.1}" y="{top:.1}" width="18" height="11" fill="{fill}" stroke="#888888""##);
        let _ = writeln!(out, r#" stroke-width="0.5"/><text x="{text_x:.1}" y="{y:.1}">{label}</text>"#);
        x += 23.0 + label.chars().count() as f64 * 6.8 + 18.0;
    }
    let y = y + 24.0;
    let mid = y - 4.0;
    let marks = [
        ("timer due", due_tick(21.0, mid - 5.0, 10.0)),
        ("done", finish_mark(Finish::Done, 0.0, mid, 6.0)),
        ("cancelled", finish_mark(Finish::Cancelled, 0.0, mid, 5.0)),
        ("panicked", finish_mark(Finish::Panicked, 0.0, mid, 6.0)),
    ];
    let mut x = 12.0;
    for (label, shape) in marks {
        // The shapes are drawn at x = 0 (the tick at 21) and moved into place.
        let dx = if label == "timer due" { x - 12.0 } else { x + 4.0 };
        let _ = writeln!(
            out,
            r#"<g transform="translate({dx:.1},0)">{shape}</g><text x="{:.1}" y="{y:.1}">{label}</text>"#,
            x + 23.0
        );
        x += 23.0 + label.chars().count() as f64 * 6.8 + 18.0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::runtime::recorder::TraceKind;
    use crate::runtime::task::WaitingOn;
    use crate::trace::fixtures::*;
    use crate::trace::Trace;

    #[test]
    fn svg_is_well_formed_with_a_row_per_task_and_marks() {
        let svg = phase_trace().to_svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        let text = check_xml(&svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
        for name in ["Task-1", "Task-2", "Task-3", "Task-4"] {
            assert!(text.contains(name), "{name} labels a row");
        }
        // The axis reaches the 10 s deadline of the cancelled phase, in whole seconds.
        for tick in ["0s", "2s", "4s", "6s", "8s", "10s"] {
            assert!(svg.contains(&format!(">{tick}</text>")), "tick {tick}");
        }
        assert!(text.contains("Task-4: timer due at 10.000s"));
        assert!(text.contains("Task-4: cancelled at 6.000s"));
        assert!(svg.contains("stroke=\"#d62728\""), "the cancelled mark's color");
        assert!(text.contains("Task-3: done at 5.000s"));
        assert_eq!(svg.matches("><title>Task-4: poll, 0.000s to 0.000s</title>").count(), 1, "a zero-length poll");
        for label in
            ["ready", "running (a poll)", "waiting on a timer", "on a gather", "on tasks", "timer due", "panicked"]
        {
            assert!(text.contains(label), "legend {label}");
        }
    }

    #[test]
    fn appended_runs_are_numbered_and_separated() {
        let mut trace = phase_trace();
        assert!(!trace.to_svg().contains(">run 1</text>"), "a single run is not numbered");
        trace.append(renumbered(phase_trace(), 4));
        let svg = trace.to_svg();
        check_xml(&svg).unwrap_or_else(|e| panic!("{e}"));
        assert!(svg.contains(">run 1</text>") && svg.contains(">run 2</text>"), "{svg}");
        assert_eq!(svg.matches("stroke-dasharray=\"6,3\"").count(), 1, "one separator");
        assert!(svg.contains(">aioloop trace: 8 tasks, 46 events, 12.000s of loop time</text>"), "{svg}");
    }

    #[test]
    fn zero_length_polls_are_visible_marks() {
        let svg = phase_trace().to_svg();
        let widths: Vec<f64> = svg
            .lines()
            .filter(|l| l.contains("fill=\"#212121\"><title>"))
            .map(|l| {
                let w = l.split("width=\"").nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(widths.len(), 6, "tasks 1 and 3 polled twice, task 2's two polls at 0 s share a mark");
        assert!(widths.iter().all(|&w| w >= 1.5), "{widths:?}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "a thousand tasks' SVG takes minutes under Miri; no unsafe or threads involved")]
    fn a_thousand_tasks_draw_a_hundred_rows_and_say_so() {
        let start = Instant::now();
        let mut events = Vec::new();
        for t in 1..=1000u64 {
            let at = t as f64 / 1000.0;
            events.push((at, t, spawned(&format!("w{t}"))));
            events.push((at, t, TraceKind::Polled));
            events.push((at, t, TraceKind::Parked(WaitingOn::Timer(start + Duration::from_secs_f64(at + 1.0)))));
        }
        for t in 1..=1000u64 {
            let at = 1.0 + t as f64 / 1000.0;
            events.push((at, t, TraceKind::Woken));
            events.push((at, t, TraceKind::Polled));
            events.push((at, t, TraceKind::Done));
        }
        let trace = trace_of(start, events);
        let svg = trace.to_svg();
        let text = check_xml(&svg).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("Showing 100 of 1000 tasks"), "{text}");
        assert!(text.contains("aioloop trace: 1000 tasks, 6000 events"));
        let rows = svg.matches("text-anchor=\"end\"").count();
        assert_eq!(rows, 100);
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        assert_eq!(
            chrome_events(&trace).iter().filter(|e| e.get("name").and_then(Json::str) == Some("thread_name")).count(),
            1000
        );
    }

    #[test]
    fn many_polls_of_one_task_are_merged_per_pixel() {
        let start = Instant::now();
        let mut events = vec![(0.0, 1, spawned("ticker"))];
        for k in 0..100_000u64 {
            let at = k as f64 * 1e-4;
            events.push((at, 1, TraceKind::Polled));
            events.push((at, 1, TraceKind::Parked(WaitingOn::Timer(start + Duration::from_secs_f64(at + 1e-4)))));
            events.push((at + 1e-4, 1, TraceKind::Woken));
        }
        let svg = trace_of(start, events).to_svg();
        check_xml(&svg).unwrap_or_else(|e| panic!("{e}"));
        assert!(svg.lines().count() < 5_000, "{} lines", svg.lines().count());
    }

    #[test]
    fn an_empty_trace_says_how_to_record_one() {
        let trace = Trace::empty(Instant::now());
        assert!(trace.events().is_empty());
        assert_eq!(trace.to_string(), "");
        let text = check_xml(&trace.to_svg()).unwrap();
        assert!(text.contains("No events: was the loop built with .trace(true)?"));
        assert_eq!(chrome_events(&trace).len(), 1, "only the process name");
    }

    #[test]
    fn axis_ticks_are_round_numbers() {
        assert_eq!(svg_ticks(0.0035), ["0.0000s", "0.0005s", "0.0010s"]);
        assert_eq!(svg_ticks(2.0), ["0.0s", "0.2s", "0.4s"]);
        assert_eq!(svg_ticks(16.0), ["0s", "2s", "4s"]);
        assert_eq!(svg_ticks(300.0), ["0s", "50s", "100s"]);
    }

    /// Returns the first three tick labels of a one-task trace ending at `end` seconds.
    fn svg_ticks(end: f64) -> Vec<String> {
        let trace = trace_of(Instant::now(), vec![(0.0, 1, spawned("t")), (end, 1, TraceKind::Done)]);
        let svg = trace.to_svg();
        svg.split("text-anchor=\"middle\" font-size=\"12\">")
            .skip(1)
            .map(|s| s[..s.find('<').unwrap()].to_string())
            .take(3)
            .collect()
    }
}
