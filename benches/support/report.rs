//! Output: number formatting and the summary tables (each part's, and `engine`'s combined one),
//! each figure beside the raw limit measured in the same run and its target.

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

// ---------------------------------------------------------------------------------------------
// Rows of the combined summary (`cargo bench --bench engine`)

/// The section of the combined summary a row belongs to (printed in this order).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Section {
    Ingest,
    Delivery,
    Latency,
    Replay,
    Memory,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Ingest,
        Section::Delivery,
        Section::Latency,
        Section::Replay,
        Section::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Ingest => "ingest",
            Section::Delivery => "delivery",
            Section::Latency => "latency",
            Section::Replay => "replay",
            Section::Memory => "memory",
        }
    }
}

/// One figure of a part's summary: what was measured, the raw limit it is compared with (measured
/// in the same run) and their ratio where that is meaningful, the target and how it is judged.
pub struct Row {
    /// The part that measured it (`ingest`, `delivery`, `replay`).
    pub part: &'static str,
    pub section: Section,
    pub name: String,
    pub measured: String,
    /// The raw limit measured in the same run ("" when the row has none).
    pub raw: String,
    /// measured / raw ("" when not meaningful).
    pub ratio: String,
    /// The target as printed ("" for information only).
    pub target: String,
    /// The value the verdict judges.
    pub value: Option<f64>,
    pub verdict: Verdict,
}

impl Row {
    /// An information row (no target).
    pub fn info(part: &'static str, section: Section, name: &str, measured: String) -> Row {
        Row {
            part,
            section,
            name: name.to_string(),
            measured,
            raw: String::new(),
            ratio: String::new(),
            target: String::new(),
            value: None,
            verdict: Verdict::Info,
        }
    }

    /// A row judged against a target.
    pub fn judged(
        part: &'static str,
        section: Section,
        name: &str,
        measured: String,
        target: &str,
        value: Option<f64>,
        verdict: Verdict,
    ) -> Row {
        Row {
            target: target.to_string(),
            value,
            verdict,
            ..Row::info(part, section, name, measured)
        }
    }

    /// Adds the raw limit measured in the same run, and the ratio when it is meaningful.
    pub fn with_raw(mut self, raw: String, ratio: Option<f64>) -> Row {
        self.raw = raw;
        self.ratio = ratio.map_or(String::new(), fmt_ratio);
        self
    }

    /// `PASS`, `MISS`, `MISS (no data)` or `info`.
    pub fn result(&self) -> &'static str {
        match (&self.verdict, self.value) {
            (Verdict::Info, _) => "info",
            (_, None) => "MISS (no data)",
            (Verdict::AtLeast(t), Some(v)) => {
                if v >= *t {
                    "PASS"
                } else {
                    "MISS"
                }
            }
            (Verdict::AtMost(t), Some(v)) => {
                if v <= *t {
                    "PASS"
                } else {
                    "MISS"
                }
            }
        }
    }
}

pub fn fmt_ratio(r: f64) -> String {
    format!("{r:.2}x")
}

/// Prints rows as a table: `metric  measured  raw limit  ratio  target  result`. With `by_section`
/// the rows are grouped under a heading per section (ingest, delivery, latency, replay, memory),
/// each keeping the order the parts produced them in, and each name is prefixed with its part.
pub fn print_rows(title: &str, rows: &[Row], by_section: bool) {
    let label = |r: &Row| {
        if by_section {
            format!("[{}] {}", r.part, r.name)
        } else {
            r.name.clone()
        }
    };
    let nw = rows
        .iter()
        .map(|r| label(r).chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let mw = rows
        .iter()
        .map(|r| r.measured.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    let rw = rows
        .iter()
        .map(|r| r.raw.chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    let xw = rows
        .iter()
        .map(|r| r.ratio.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let tw = rows
        .iter()
        .map(|r| r.target.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let width = nw + mw + rw + xw + tw + 4 * 3 + 1 + 14;
    let line = |name: &str, measured: &str, raw: &str, ratio: &str, target: &str, result: &str| {
        println!(
            "{name:<nw$} {measured:>mw$}   {raw:>rw$}   {ratio:>xw$}   {target:<tw$}   {result}"
        );
    };
    let pad = width.saturating_sub(title.chars().count() + 2) / 2;
    println!("\n{} {title} {}", "=".repeat(pad), "=".repeat(pad));
    line(
        "metric",
        "measured",
        "raw limit",
        "ratio",
        "target",
        "result",
    );
    println!("{}", "-".repeat(width));
    let print = |r: &Row| {
        line(
            &label(r),
            &r.measured,
            &r.raw,
            &r.ratio,
            &r.target,
            r.result(),
        );
    };
    if by_section {
        for section in Section::ALL {
            let in_section: Vec<&Row> = rows.iter().filter(|r| r.section == section).collect();
            if in_section.is_empty() {
                continue;
            }
            println!("{}", section.name());
            in_section.into_iter().for_each(print);
        }
    } else {
        rows.iter().for_each(print);
    }
    println!("{}", "-".repeat(width));
    let count = |s: &str| rows.iter().filter(|r| r.result().starts_with(s)).count();
    println!(
        "targets: {} PASS, {} MISS (the bench never fails on a MISS)",
        count("PASS"),
        count("MISS")
    );
}
