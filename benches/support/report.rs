//! Output: number formatting and the summary table, each figure beside its target.

pub fn fmt_rate(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn fmt_us(us: Option<u32>) -> String {
    match us {
        Some(us) if us >= 10_000 => format!("{:.1} ms", f64::from(us) / 1000.0),
        Some(us) => format!("{:.2} ms", f64::from(us) / 1000.0),
        None => "n/a".into(),
    }
}

pub fn fmt_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// How a measured value is judged against its target.
pub enum Verdict {
    AtLeast(f64),
    AtMost(f64),
    Info,
}

/// The summary table's column widths (metric, measured, target).
pub struct Table {
    pub name: usize,
    pub measured: usize,
    pub target: usize,
}

impl Table {
    /// The header line: `metric  measured  target  result`.
    pub fn header(&self) {
        println!(
            "{:<nw$} {:>mw$}   {:<tw$} result",
            "metric",
            "measured",
            "target",
            nw = self.name,
            mw = self.measured,
            tw = self.target
        );
    }

    /// One row: the figure, its target and PASS/MISS (or `info`).
    pub fn row(
        &self,
        name: &str,
        measured: String,
        target: &str,
        value: Option<f64>,
        verdict: Verdict,
    ) {
        let result = match (verdict, value) {
            (Verdict::Info, _) => "info",
            (_, None) => "MISS (no data)",
            (Verdict::AtLeast(t), Some(v)) => {
                if v >= t {
                    "PASS"
                } else {
                    "MISS"
                }
            }
            (Verdict::AtMost(t), Some(v)) => {
                if v <= t {
                    "PASS"
                } else {
                    "MISS"
                }
            }
        };
        println!(
            "{name:<nw$} {measured:>mw$}   {target:<tw$} {result}",
            nw = self.name,
            mw = self.measured,
            tw = self.target
        );
    }
}
