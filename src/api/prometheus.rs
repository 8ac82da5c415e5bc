//! Writing the Prometheus text exposition format (version 0.0.4) by hand: a handful of
//! families does not warrant a metrics crate, and the format is small — `# HELP`, `# TYPE`, then
//! `name{label="value"} number` lines. Escaping follows the format: `\\`, `\n` in help text, and
//! also `\"` in label values.

use std::fmt::Write;

/// The content type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One scrape's text, built family by family.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines. Samples of it follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "metric name {name:?}");
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// One sample line. `name` is the family name, or for a histogram the family name with
    /// `_bucket`, `_sum` or `_count`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        debug_assert!(valid_name(name), "metric name {name:?}");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                debug_assert!(valid_name(label), "label name {label:?}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"");
                for c in text.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = match value.into() {
            Value::Int(v) => writeln!(self.out, " {v}"),
            Value::Float(v) if v.is_finite() => writeln!(self.out, " {v}"),
            Value::Float(v) if v.is_nan() => writeln!(self.out, " NaN"),
            Value::Float(v) if v > 0.0 => writeln!(self.out, " +Inf"),
            Value::Float(_) => writeln!(self.out, " -Inf"),
        };
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample's number: integers print exactly, floats in plain decimal.
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: names are constants here, so this only guards against typos.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_samples_and_escapes() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "A \\ help\nline.");
        e.sample("x_total", &[], 3u64);
        e.sample("x_total", &[("a", "q\"b\\c\nd"), ("b", "")], 1.5f64);
        e.sample("x_total", &[("a", "inf")], f64::INFINITY);
        assert_eq!(
            e.finish(),
            "# HELP x_total A \\\\ help\\nline.\n# TYPE x_total counter\nx_total 3\n\
             x_total{a=\"q\\\"b\\\\c\\nd\",b=\"\"} 1.5\nx_total{a=\"inf\"} +Inf\n"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("rev23_hook_lag_events"));
        assert!(!valid_name("9lives"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
