//! The results of a run: one [`Level`] per measured load, written as a table or JSON.

use std::io::{self, Write};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::tally::Tally;
use super::Arrivals;

/// The load of one level of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Closed loop: this many requests outstanding at all times.
    Concurrency(usize),
    /// Open loop: requests sent at this rate (per second).
    Rate(f64),
}

/// What one level measured.
#[derive(Debug, Clone)]
pub struct Level {
    pub load: Load,
    /// In-process: `INSTANCESxTHREADS`.
    pub arrangement: Option<String>,
    pub tally: Tally,
    /// The time the throughput is over: the measurement window, or for an open loop
    /// until the last of the window's requests was answered, if later.
    pub elapsed: Duration,
}

impl Level {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.tally.successes() as f64 / self.elapsed.as_secs_f64()
    }

    /// `concurrency 4`, `rate 200/s`, `concurrency 4 (2x1)`.
    pub fn label(&self) -> String {
        let load = match self.load {
            Load::Concurrency(c) => format!("concurrency {c}"),
            Load::Rate(r) => format!("rate {r}/s"),
        };
        match &self.arrangement {
            Some(arrangement) => format!("{load} ({arrangement})"),
            None => load,
        }
    }

    /// The latency at `quantile`, in milliseconds; `None` without a success.
    fn ms(&self, quantile: f64) -> Option<f64> {
        let latencies = &self.tally.latencies;
        (!latencies.is_empty()).then(|| latencies.value_at_quantile(quantile) as f64 / 1000.0)
    }

    fn max_ms(&self) -> Option<f64> {
        let latencies = &self.tally.latencies;
        (!latencies.is_empty()).then(|| latencies.max() as f64 / 1000.0)
    }

    fn mean_ms(&self) -> Option<f64> {
        let latencies = &self.tally.latencies;
        // Microsecond precision, as recorded.
        (!latencies.is_empty()).then(|| latencies.mean().round() / 1000.0)
    }

    /// The level as the JSON report's `runs` entry.
    fn to_json(&self) -> Value {
        let mut run = Map::new();
        match self.load {
            Load::Concurrency(c) => run.insert("concurrency".into(), json!(c)),
            Load::Rate(r) => run.insert("rate".into(), json!(r)),
        };
        if let Some(arrangement) = &self.arrangement {
            run.insert("arrangement".into(), json!(arrangement));
        }
        let throughput = (self.throughput() * 1000.0).round() / 1000.0;
        run.insert("throughput".into(), json!(throughput));
        for (key, quantile) in [
            ("p50_ms", 0.5),
            ("p90_ms", 0.9),
            ("p99_ms", 0.99),
            ("p999_ms", 0.999),
        ] {
            run.insert(key.into(), json!(self.ms(quantile)));
        }
        run.insert("max_ms".into(), json!(self.max_ms()));
        run.insert("mean_ms".into(), json!(self.mean_ms()));
        let refusals = &self.tally.refusals;
        if !refusals.is_empty() {
            let ms = |us: u64| us as f64 / 1000.0;
            run.insert(
                "refused".into(),
                json!({
                    "count": refusals.len(),
                    "p50_ms": ms(refusals.value_at_quantile(0.5)),
                    "p99_ms": ms(refusals.value_at_quantile(0.99)),
                    "max_ms": ms(refusals.max()),
                }),
            );
        }
        run.insert(
            "requests".into(),
            json!(self.tally.successes() + self.tally.failed()),
        );
        run.insert("errors".into(), json!(self.tally.failures));
        run.insert("elapsed_s".into(), json!(self.elapsed.as_secs_f64()));
        Value::Object(run)
    }
}

/// Everything a run measured, and what it measured against.
pub struct Report {
    /// The server address, or `in-process`.
    pub target: String,
    pub model: String,
    /// `http`, `http-json`, `grpc`, `image` or `in-process`.
    pub protocol: String,
    pub batch: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open loop: how send times were spaced.
    pub arrivals: Option<Arrivals>,
    /// In-process: the engine's name.
    pub engine: Option<String>,
    /// In-process: the precision the engine computed in (`f32`, `bf16`, ...).
    pub precision: Option<String>,
    /// Every level measured, in order (in-process: arrangement by arrangement).
    pub levels: Vec<Level>,
}

impl Report {
    /// Whether the levels come from several in-process arrangements.
    fn arrangements(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for level in &self.levels {
            if let Some(name) = level.arrangement.as_deref() {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// In-process: the level of highest throughput for each concurrency, in sweep
    /// order; otherwise every level.
    pub fn best(&self) -> Vec<&Level> {
        if self.arrangements().len() < 2 {
            return self.levels.iter().collect();
        }
        let mut best: Vec<&Level> = Vec::new();
        for level in &self.levels {
            match best.iter_mut().find(|b| b.load == level.load) {
                Some(slot) if level.throughput() > slot.throughput() => *slot = level,
                Some(_) => {}
                None => best.push(level),
            }
        }
        best
    }

    /// The table: one row per level, then in-process the best arrangement per level.
    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let window = format!(
            "{} warm-up + {} per level",
            seconds(self.warmup),
            seconds(self.duration)
        );
        match &self.engine {
            Some(engine) => writeln!(
                out,
                "{} in-process ({engine}{}), batch {}, {window}",
                self.model,
                self.precision
                    .as_ref()
                    .map(|p| format!(", {p}"))
                    .unwrap_or_default(),
                self.batch
            )?,
            None => writeln!(
                out,
                "{} over {} at {}, batch {}, {window}{}",
                self.model,
                self.protocol,
                self.target,
                self.batch,
                match self.arrivals {
                    Some(Arrivals::Poisson) => ", Poisson arrivals",
                    Some(Arrivals::Constant) => ", constant arrivals",
                    None => "",
                }
            )?,
        }
        let load_header = match self.levels.first().map(|l| l.load) {
            Some(Load::Rate(_)) => "rate/s",
            _ => "concurrency",
        };
        writeln!(
            out,
            "{:<10} {:>11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
            "mode", load_header, "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        )?;
        let mut rows: Vec<(String, &Level)> = self
            .levels
            .iter()
            .map(|level| (self.mode(level), level))
            .collect();
        if self.arrangements().len() > 1 {
            rows.extend(self.best().into_iter().map(|level| {
                let arrangement = level.arrangement.as_deref().unwrap_or_default();
                (format!("best {arrangement}"), level)
            }));
        }
        for (mode, level) in rows {
            let load = match level.load {
                Load::Concurrency(c) => c.to_string(),
                Load::Rate(r) => format!("{r}"),
            };
            let cell = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.2}"));
            writeln!(
                out,
                "{mode:<10} {load:>11} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                level.throughput(),
                cell(level.ms(0.5)),
                cell(level.ms(0.9)),
                cell(level.ms(0.99)),
                cell(level.ms(0.999)),
                cell(level.max_ms()),
                errors(&level.tally),
            )?;
        }
        Ok(())
    }

    /// For each level with failures, the first message of each kind.
    pub fn print_failures(&self, out: &mut impl Write) -> io::Result<()> {
        for level in &self.levels {
            for (kind, detail) in &level.tally.examples {
                writeln!(out, "{} {kind}: {detail}", level.label())?;
            }
        }
        Ok(())
    }

    fn mode(&self, level: &Level) -> String {
        match (&level.arrangement, level.load) {
            (Some(arrangement), _) => arrangement.clone(),
            (None, Load::Concurrency(_)) => "closed".into(),
            (None, Load::Rate(_)) => "open".into(),
        }
    }

    /// The JSON report: `runs` has one entry per level (in-process: the best
    /// arrangement of each concurrency; every arrangement's runs are in `arrangements`).
    pub fn to_json(&self) -> Value {
        let mut report = json!({
            "target": self.target,
            "model": self.model,
            "protocol": self.protocol,
            "batch": self.batch,
            "warmup_s": self.warmup.as_secs_f64(),
            "duration_s": self.duration.as_secs_f64(),
            "runs": self.best().iter().map(|l| l.to_json()).collect::<Vec<_>>(),
        });
        if let Some(arrivals) = self.arrivals {
            report["loop"] = json!("open");
            report["arrivals"] = json!(match arrivals {
                Arrivals::Constant => "constant",
                Arrivals::Poisson => "poisson",
            });
        } else {
            report["loop"] = json!("closed");
        }
        if let Some(precision) = &self.precision {
            report["precision"] = json!(precision);
        }
        if let Some(engine) = &self.engine {
            report["engine"] = json!(engine);
            let arrangements: Vec<Value> = self
                .arrangements()
                .into_iter()
                .map(|name| {
                    let runs: Vec<Value> = self
                        .levels
                        .iter()
                        .filter(|l| l.arrangement.as_deref() == Some(name))
                        .map(Level::to_json)
                        .collect();
                    json!({"arrangement": name, "runs": runs})
                })
                .collect();
            report["arrangements"] = json!(arrangements);
        }
        report
    }
}

/// `0`, or `12: http_429 10, timeout 2`.
fn errors(tally: &Tally) -> String {
    let failed = tally.failed();
    if failed == 0 {
        return "0".into();
    }
    let kinds: Vec<String> = tally
        .failures
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    format!("{failed}: {}", kinds.join(", "))
}

/// `2s`, `0.5s`.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::super::tally::{Failure, FailureKind};
    use super::*;

    fn level(concurrency: usize, arrangement: &str, successes: u64) -> Level {
        let mut tally = Tally::default();
        for i in 0..successes {
            tally.success(Duration::from_micros(1000 + i));
        }
        Level {
            load: Load::Concurrency(concurrency),
            arrangement: Some(arrangement.into()),
            tally,
            elapsed: Duration::from_secs(1),
        }
    }

    fn report(levels: Vec<Level>) -> Report {
        Report {
            target: "in-process".into(),
            model: "m".into(),
            protocol: "in-process".into(),
            batch: 1,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(1),
            arrivals: None,
            engine: Some("onnxruntime".into()),
            precision: Some("f32".into()),
            levels,
        }
    }

    #[test]
    fn the_best_arrangement_is_chosen_per_concurrency() {
        let report = report(vec![
            level(1, "2x1", 10),
            level(2, "2x1", 30),
            level(1, "1x2", 20),
            level(2, "1x2", 25),
        ]);
        let best: Vec<(Load, &str)> = report
            .best()
            .iter()
            .map(|l| (l.load, l.arrangement.as_deref().unwrap()))
            .collect();
        assert_eq!(
            best,
            [(Load::Concurrency(1), "1x2"), (Load::Concurrency(2), "2x1")]
        );
        let json = report.to_json();
        assert_eq!(json["runs"].as_array().unwrap().len(), 2);
        assert_eq!(json["runs"][0]["arrangement"], "1x2");
        assert_eq!(json["runs"][0]["throughput"], 20.0);
        assert_eq!(json["arrangements"][1]["runs"][1]["concurrency"], 2);
        let mut table = Vec::new();
        report.print(&mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert_eq!(table.lines().count(), 2 + 4 + 2, "{table}");
        assert!(table.contains("best 2x1"), "{table}");
    }

    #[test]
    fn json_runs_keep_their_key_names_and_count_failures() {
        let mut level = level(4, "x", 3);
        level.arrangement = None;
        level
            .tally
            .failure(&Failure::new(FailureKind::Http(503), "not ready"));
        let mut report = report(vec![level]);
        report.engine = None;
        let run = &report.to_json()["runs"][0];
        for key in [
            "concurrency",
            "throughput",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "mean_ms",
            "requests",
            "errors",
        ] {
            assert!(!run[key].is_null(), "{key} in {run}");
        }
        assert_eq!(run["requests"], 4);
        assert_eq!(run["errors"]["http_503"], 1);
        assert!(run.get("arrangement").is_none());
    }
}
