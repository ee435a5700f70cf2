//! The benchmark report: each figure beside the limit it is measured against, with the ratio,
//! printed as a table and written as JSON.

use serde::Serialize;

/// One measured figure beside its reference.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Section, e.g. `ingest`.
    pub group: String,
    /// What was measured.
    pub name: String,
    /// The measurement.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// What it is measured beside (the limit or reference), if anything.
    pub beside_name: Option<String>,
    /// The reference's value, in the same unit.
    pub beside: Option<f64>,
}

impl Figure {
    /// A figure with no reference.
    pub fn alone(group: &str, name: &str, value: f64, unit: &str) -> Figure {
        Figure {
            group: group.into(),
            name: name.into(),
            value,
            unit: unit.into(),
            beside_name: None,
            beside: None,
        }
    }

    /// A figure beside a reference measured in the same run.
    pub fn beside(
        group: &str,
        name: &str,
        value: f64,
        unit: &str,
        beside_name: &str,
        beside: f64,
    ) -> Figure {
        Figure {
            beside_name: Some(beside_name.into()),
            beside: Some(beside),
            ..Figure::alone(group, name, value, unit)
        }
    }

    /// value / reference.
    pub fn ratio(&self) -> Option<f64> {
        self.beside.filter(|b| *b != 0.0).map(|b| self.value / b)
    }
}

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: String,
    /// The machine: CPU model, cores, memory, kernel.
    pub machine: String,
    /// The figures, in the order measured.
    pub figures: Vec<Figure>,
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

impl Report {
    /// Adds a figure and prints it at once (long runs show progress).
    pub fn add(&mut self, f: Figure) {
        println!("{}", row(&f));
        self.figures.push(f);
    }

    /// Adds `value` of the figure `name` once beside each of `references`.
    pub fn beside_each(
        &mut self,
        group: &str,
        name: &str,
        value: f64,
        unit: &str,
        references: &[(&str, f64)],
    ) {
        for (reference, beside) in references {
            self.add(Figure::beside(group, name, value, unit, reference, *beside));
        }
    }
}

/// The table's header line.
pub fn header() -> String {
    format!(
        "{:<10} {:<44} {:>14} {:<10} {:<38} {:>14} {:>9}",
        "group", "figure", "value", "unit", "beside", "reference", "ratio"
    )
}

fn row(f: &Figure) -> String {
    format!(
        "{:<10} {:<44} {:>14} {:<10} {:<38} {:>14} {:>9}",
        f.group,
        f.name,
        number(f.value),
        f.unit,
        f.beside_name.as_deref().unwrap_or(""),
        f.beside.map(number).unwrap_or_default(),
        f.ratio().map(|r| format!("{r:.3}")).unwrap_or_default()
    )
}

/// A one-line description of this machine, from /proc.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem_gib:.1} GiB, Linux {kernel}")
}
