//! Server-rendered SVG charts for the flow page (issue 14): stacked bars,
//! a stacked-area cumulative flow, lines against a limit, and horizontal
//! percentile bars. No script and no inline style: colours come from CSS
//! classes in app.css (so dark mode works), hover details from `<title>`.
//!
//! The output is inserted into templates unescaped, so every piece of text
//! that reaches it (lane and worker names) goes through [`escape`] here.

use std::fmt::Write;

const W: f64 = 600.0;
const H: f64 = 230.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 24.0;

/// Escapes text for SVG/HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One data series: a legend name, a CSS class and one value per x.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub class: String,
    pub values: Vec<i64>,
}

impl Series {
    pub fn new(name: &str, class: &str, values: Vec<i64>) -> Self {
        Self {
            name: name.to_owned(),
            class: class.to_owned(),
            values,
        }
    }
}

/// A round step giving about `ticks` ticks up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    step.max(1.0)
}

struct Frame {
    top: f64,
    n: usize,
    step: f64,
}

impl Frame {
    fn new(max: f64, n: usize) -> Self {
        let step = nice_step(max, 4.0);
        let top = (max / step).ceil().max(1.0) * step;
        Self { top, n, step }
    }

    fn y(&self, value: f64) -> f64 {
        TOP + (H - TOP - BOTTOM) * (1.0 - value / self.top)
    }

    fn band(&self) -> f64 {
        (W - LEFT - RIGHT) / self.n.max(1) as f64
    }

    fn x(&self, i: usize) -> f64 {
        LEFT + self.band() * i as f64
    }

    fn x_mid(&self, i: usize) -> f64 {
        self.x(i) + self.band() / 2.0
    }
}

fn open(out: &mut String, id: &str, title: &str, desc: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" preserveAspectRatio=\"xMidYMid meet\">\
         <title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        escape(title),
        escape(desc)
    );
}

fn axes(out: &mut String, frame: &Frame, labels: &[String]) {
    let mut v = 0.0;
    while v <= frame.top + 0.001 {
        let y = frame.y(v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            v as i64
        );
        v += frame.step;
    }
    // About eight date labels, whatever the range.
    let every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        if i % every == 0 {
            let _ = write!(
                out,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                frame.x_mid(i),
                H - 6.0,
                escape(label.get(5..).unwrap_or(label))
            );
        }
    }
}

fn legend(out: &mut String, series: &[&Series]) {
    let mut x = LEFT;
    for s in series {
        let _ = write!(
            out,
            "<rect class=\"{}\" x=\"{x:.1}\" y=\"6\" width=\"10\" height=\"10\" rx=\"2\"/>\
             <text class=\"legend\" x=\"{:.1}\" y=\"15\">{}</text>",
            escape(&s.class),
            x + 14.0,
            escape(&s.name)
        );
        x += 28.0 + 7.0 * s.name.chars().count() as f64;
    }
}

/// Bars per day, the series stacked bottom to top.
pub fn stacked_bars(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
) -> String {
    let n = labels.len();
    let totals: Vec<i64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let frame = Frame::new(totals.iter().copied().max().unwrap_or(0) as f64, n);
    let mut out = String::new();
    open(&mut out, id, title, desc);
    axes(&mut out, &frame, labels);
    let width = (frame.band() * 0.72).max(1.0);
    for (i, label) in labels.iter().enumerate() {
        let mut base = 0i64;
        let x = frame.x(i) + (frame.band() - width) / 2.0;
        let detail: Vec<String> = series
            .iter()
            .map(|s| format!("{} {}", s.values.get(i).copied().unwrap_or(0), s.name))
            .collect();
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v <= 0 {
                continue;
            }
            let (y0, y1) = (frame.y(base as f64), frame.y((base + v) as f64));
            let _ = write!(
                out,
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{width:.1}\" height=\"{:.1}\"><title>{}: {}</title></rect>",
                escape(&s.class),
                (y0 - y1).max(0.5),
                escape(label),
                escape(&detail.join(", "))
            );
            base += v;
        }
    }
    legend(&mut out, &series.iter().collect::<Vec<_>>());
    out.push_str("</svg>");
    out
}

/// Stacked areas (the cumulative flow): the first series at the bottom.
pub fn stacked_area(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
) -> String {
    let n = labels.len();
    let totals: Vec<i64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let frame = Frame::new(totals.iter().copied().max().unwrap_or(0) as f64, n);
    let mut out = String::new();
    open(&mut out, id, title, desc);
    axes(&mut out, &frame, labels);
    let mut below = vec![0i64; n];
    for s in series {
        let above: Vec<i64> = (0..n)
            .map(|i| below[i] + s.values.get(i).copied().unwrap_or(0))
            .collect();
        let mut points = String::new();
        for (i, v) in above.iter().enumerate() {
            let _ = write!(points, "{:.1},{:.1} ", frame.x_mid(i), frame.y(*v as f64));
        }
        for i in (0..n).rev() {
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                frame.x_mid(i),
                frame.y(below[i] as f64)
            );
        }
        let last = s.values.last().copied().unwrap_or(0);
        let _ = write!(
            out,
            "<polygon class=\"{}\" points=\"{}\"><title>{}: {} at the end</title></polygon>",
            escape(&s.class),
            points.trim_end(),
            escape(&s.name),
            last
        );
        below = above;
    }
    legend(&mut out, &series.iter().rev().collect::<Vec<_>>());
    out.push_str("</svg>");
    out
}

/// Lines per day, with an optional dashed limit.
pub fn lines(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
    limit: Option<(i64, &str)>,
) -> String {
    let n = labels.len();
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .chain(limit.map(|(l, _)| l))
        .max()
        .unwrap_or(0);
    let frame = Frame::new(max as f64, n);
    let mut out = String::new();
    open(&mut out, id, title, desc);
    axes(&mut out, &frame, labels);
    if let Some((value, name)) = limit {
        let y = frame.y(value as f64);
        let _ = write!(
            out,
            "<line class=\"limit\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"limit-label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} {value}</text>",
            W - RIGHT,
            W - RIGHT - 2.0,
            y - 4.0,
            escape(name)
        );
    }
    for s in series {
        let mut points = String::new();
        for (i, v) in s.values.iter().enumerate() {
            let _ = write!(points, "{:.1},{:.1} ", frame.x_mid(i), frame.y(*v as f64));
        }
        let _ = write!(
            out,
            "<polyline class=\"line {}\" points=\"{}\"/>",
            escape(&s.class),
            points.trim_end()
        );
        for (i, v) in s.values.iter().enumerate() {
            let _ = write!(
                out,
                "<circle class=\"dot {}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{}: {} {}</title></circle>",
                escape(&s.class),
                frame.x_mid(i),
                frame.y(*v as f64),
                escape(&labels[i]),
                v,
                escape(&s.name)
            );
        }
    }
    legend(&mut out, &series.iter().collect::<Vec<_>>());
    out.push_str("</svg>");
    out
}

/// One row of a horizontal bar chart: a label and up to three values
/// (drawn overlapping, largest first: p95 light, p85 mid, p50 dark).
#[derive(Debug, Clone)]
pub struct BarRow {
    pub label: String,
    pub values: Vec<i64>,
    /// The text at the end of the row.
    pub note: String,
    /// Emphasise this row (the worst).
    pub hot: bool,
}

/// Horizontal overlapping bars per row, on a shared scale.
pub fn hbars(id: &str, title: &str, desc: &str, rows: &[BarRow], classes: &[&str]) -> String {
    let row_h = 26.0;
    let label_w = 130.0;
    let note_w = 225.0;
    let height = TOP + row_h * rows.len().max(1) as f64 + 6.0;
    let max = rows
        .iter()
        .flat_map(|r| r.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let span = W - label_w - note_w - RIGHT;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {height:.0}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\">\
         <title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        escape(title),
        escape(desc)
    );
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + row_h * i as f64;
        let label: String = row.label.chars().take(20).collect();
        let _ = write!(
            out,
            "<text class=\"row-label{}\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            if row.hot { " hot" } else { "" },
            label_w - 8.0,
            y + 16.0,
            escape(&label)
        );
        let mut order: Vec<(usize, i64)> = row.values.iter().copied().enumerate().collect();
        // Largest first so smaller bars stay visible on top; on a tie the
        // later (lighter) value goes underneath.
        order.sort_by_key(|(k, v)| (std::cmp::Reverse(*v), std::cmp::Reverse(*k)));
        for (k, v) in order {
            let width = (v as f64 / max * span).max(if v > 0 { 2.0 } else { 0.0 });
            let class = classes.get(k).copied().unwrap_or("s-bar");
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{label_w}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\" rx=\"2\"/>",
                y + 4.0,
                row_h - 8.0
            );
        }
        let _ = write!(
            out,
            "<text class=\"row-note{}\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            if row.hot { " hot" } else { "" },
            label_w + span + 8.0,
            y + 16.0,
            escape(&row.note)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_everywhere_they_are_drawn() {
        let evil = "<script>alert(1)</script>\"'&";
        let labels = vec!["2026-01-01".to_owned()];
        let series = vec![Series::new(evil, "s-human", vec![3])];
        for svg in [
            stacked_bars("a", evil, evil, &labels, &series),
            stacked_area("b", evil, evil, &labels, &series),
            lines("c", evil, evil, &labels, &series, Some((2, evil))),
            hbars(
                "d",
                evil,
                evil,
                &[BarRow {
                    label: evil.into(),
                    values: vec![1],
                    note: evil.into(),
                    hot: false,
                }],
                &["x"],
            ),
        ] {
            assert!(!svg.contains("<script"), "{svg}");
            assert!(svg.contains("&lt;script&gt;"), "{svg}");
            assert!(!svg.contains("\"'&\""), "{svg}");
        }
    }

    #[test]
    fn bars_scale_to_a_round_top_and_stack() {
        let labels: Vec<String> = (1..=3).map(|d| format!("2026-01-0{d}")).collect();
        let svg = stacked_bars(
            "t",
            "t",
            "d",
            &labels,
            &[
                Series::new("human", "s-human", vec![1, 0, 4]),
                Series::new("agent", "s-agent", vec![2, 0, 3]),
            ],
        );
        // 7 at most: ticks 0, 2, 4, 6, 8.
        assert!(svg.contains(">8</text>"), "{svg}");
        // Two bars (the empty day draws none) and the legend swatch.
        assert_eq!(svg.matches("<rect class=\"s-human\" x=").count(), 3);
        assert!(svg.contains("2026-01-03: 4 human, 3 agent"));
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(nice_step(100.0, 4.0), 50.0);
    }
}
