//! Charts drawn on the server as SVG: no script, no external files.
//! Colours are presentation attributes, so the CSP's `style-src 'self'`
//! holds; every bar has a `<title>` for its exact value.

use maud::{Markup, html};

/// Colours per severity, most severe first.
pub const SEVERITY_COLOURS: [(&str, &str); 5] = [
    ("critical", "#7f1d1d"),
    ("high", "#dc2626"),
    ("medium", "#f59e0b"),
    ("low", "#2563eb"),
    ("info", "#94a3b8"),
];

/// One stacked bar per day. `days` are labels (YYYY-MM-DD); `counts[d][s]`
/// the count of severity `s` (in [`SEVERITY_COLOURS`] order) on day `d`.
pub fn stacked_days(days: &[String], counts: &[[u64; 5]], labels: &[String; 5], aria: &str) -> Markup {
    let (w, h, left, bottom, top) = (1200.0_f64, 200.0_f64, 34.0_f64, 30.0_f64, 8.0_f64);
    let max = counts
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let scale_max = nice_ceiling(max);
    let n = days.len().max(1) as f64;
    let slot = (w - left - 4.0) / n;
    let bar = (slot * 0.75).max(1.0);
    let plot_h = h - bottom - top;
    let y = |v: f64| top + plot_h - v / scale_max as f64 * plot_h;
    html! {
        svg.chart viewBox={"0 0 " (w) " " (h + 22.0)} role="img" aria-label=(aria) xmlns="http://www.w3.org/2000/svg" {
            @for i in 0..=4u64 {
                @let v = scale_max * i / 4;
                line x1=(left) x2=(w) y1=(y(v as f64)) y2=(y(v as f64)) stroke="#e5e7eb" stroke-width="1" {}
                text x=(left - 4.0) y=(y(v as f64) + 4.0) text-anchor="end" font-size="11" fill="#475569" { (v) }
            }
            @for (d, day) in days.iter().enumerate() {
                @let x = left + d as f64 * slot + (slot - bar) / 2.0;
                @for (y0, hgt, colour, v, s) in segments(counts.get(d), &y) {
                    rect x=(fmt(x)) y=(fmt(y0)) width=(fmt(bar)) height=(fmt(hgt)) fill=(colour) {
                        title { (day) ": " (v) " " (labels[s]) }
                    }
                }
                @if d % 5 == 0 || d + 1 == days.len() {
                    text x=(fmt(x + bar / 2.0)) y=(h - bottom + 14.0) text-anchor="middle" font-size="10" fill="#475569" {
                        (day.get(5..).unwrap_or(day))
                    }
                }
            }
            @for (s, (_, colour)) in SEVERITY_COLOURS.iter().enumerate() {
                rect x=(left + s as f64 * 120.0) y=(h + 4.0) width="10" height="10" fill=(colour) {}
                text x=(left + 14.0 + s as f64 * 120.0) y=(h + 13.0) font-size="11" fill="#1f2937" { (labels[s]) }
            }
        }
    }
}

/// Horizontal bars of a percentage per label (e.g. compliant machines per group).
pub fn percent_bars(rows: &[(String, f64, String)], aria: &str) -> Markup {
    let (w, row_h, left) = (640.0_f64, 26.0_f64, 180.0_f64);
    let h = row_h * rows.len().max(1) as f64 + 8.0;
    let span = w - left - 60.0;
    html! {
        svg.chart viewBox={"0 0 " (w) " " (h)} role="img" aria-label=(aria) xmlns="http://www.w3.org/2000/svg" {
            @for (i, (label, pct, detail)) in rows.iter().enumerate() {
                @let y = 4.0 + i as f64 * row_h;
                @let pct = pct.clamp(0.0, 100.0);
                @let colour = if pct >= 100.0 { "#16a34a" } else if pct >= 50.0 { "#f59e0b" } else { "#dc2626" };
                text x=(left - 8.0) y=(y + 16.0) text-anchor="end" font-size="12" fill="#1f2937" { (truncate(label, 26)) }
                rect x=(left) y=(y + 3.0) width=(fmt(span)) height="16" fill="#f1f5f9" {}
                rect x=(left) y=(y + 3.0) width=(fmt(span * pct / 100.0)) height="16" fill=(colour) {
                    title { (label) ": " (format!("{pct:.0}")) "% (" (detail) ")" }
                }
                text x=(fmt(left + span + 6.0)) y=(y + 16.0) font-size="12" fill="#1f2937" { (format!("{pct:.0}")) "%" }
            }
        }
    }
}

/// The stacked pieces of one bar: (top y, height, colour, count, severity index).
fn segments(counts: Option<&[u64; 5]>, y: &dyn Fn(f64) -> f64) -> Vec<(f64, f64, &'static str, u64, usize)> {
    let mut acc = 0u64;
    let mut out = Vec::new();
    for (s, (_, colour)) in SEVERITY_COLOURS.iter().enumerate() {
        let v = counts.map(|c| c[s]).unwrap_or(0);
        if v > 0 {
            let (top, bottom) = (y((acc + v) as f64), y(acc as f64));
            out.push((top, bottom - top, *colour, v, s));
        }
        acc += v;
    }
    out
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// 1, 2, 5 × 10ⁿ at or above `v` (and at least 4, so the four grid steps are whole).
pub fn nice_ceiling(v: u64) -> u64 {
    let v = v.max(4);
    let mut base = 1u64;
    loop {
        for m in [1u64, 2, 4, 5, 8] {
            let c = base.saturating_mul(m);
            if c >= v && c % 4 == 0 {
                return c;
            }
        }
        base = base.saturating_mul(10);
        if base == u64::MAX {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_ceiling_is_round_and_divisible() {
        assert_eq!(nice_ceiling(0), 4);
        assert_eq!(nice_ceiling(3), 4);
        assert_eq!(nice_ceiling(7), 8);
        assert_eq!(nice_ceiling(9), 20);
        assert_eq!(nice_ceiling(1000), 1000);
        assert_eq!(nice_ceiling(1001), 2000);
    }

    #[test]
    fn charts_escape_labels_and_carry_values() {
        let labels = ["a", "b", "c", "d", "e"].map(String::from);
        let days = vec!["2026-11-01".to_string(), "2026-11-02".to_string()];
        let svg = stacked_days(&days, &[[1, 2, 0, 0, 0], [0, 0, 0, 0, 3]], &labels, "<x>").into_string();
        assert!(svg.contains("2026-11-01: 2 b"));
        assert!(svg.contains("2026-11-02: 3 e"));
        assert!(svg.contains("aria-label=\"&lt;x&gt;\""));
        let bars = percent_bars(
            &[("<img src=x onerror=alert(1)>".into(), 50.0, "1/2".into())],
            "g",
        )
        .into_string();
        assert!(!bars.contains("<img"));
        assert!(bars.contains("&lt;img"));
    }
}
