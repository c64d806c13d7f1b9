//! PNG charts of a report: throughput per level, latency percentiles per level, and
//! each level's latency distribution as a percentile spectrum (from its HDR histogram,
//! on a log axis that spreads out the tail). Text is drawn with a font compiled into
//! the binary, so the charts look the same on a machine without fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::Context;
use plotters::prelude::*;

use super::report::{Level, Load, Report};

const SIZE: (u32, u32) = (960, 600);
/// Line colours, in order (matplotlib's "tab10", which stays readable on white).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
/// The embedded font's name in plotters' font table.
const FONT: &str = "sans-serif";

/// The drawing area of one chart.
type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
/// Load levels across, a value up.
type LevelAxes =
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;
/// Draws one chart of a report.
type Chart = fn(&Report, &Area<'_>) -> anyhow::Result<()>;

/// Draws the charts into `dir` (created if missing); returns the files written.
pub fn draw(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    register_font()?;
    let charts: [(&str, Chart); 3] = [
        ("throughput.png", throughput),
        ("latency.png", percentiles),
        ("latency-distribution.png", distribution),
    ];
    let mut written = Vec::new();
    for (name, chart) in charts {
        let path = dir.join(name);
        let mut pixels = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(plot_error)?;
            chart(report, &root).with_context(|| format!("drawing {name}"))?;
            root.present().map_err(plot_error)?;
        }
        write_png(&path, &pixels).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn register_font() -> anyhow::Result<()> {
    static REGISTER: Once = Once::new();
    let mut result = Ok(());
    REGISTER.call_once(|| {
        result = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .map_err(|_| anyhow::anyhow!("the embedded font cannot be read"));
    });
    result
}

fn color(index: usize) -> RGBColor {
    COLORS[index % COLORS.len()]
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

fn write_png(path: &Path, rgb: &[u8]) -> anyhow::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, SIZE.0, SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

/// `concurrency 4` → `4`, `rate 200/s` → `200/s`.
fn load_label(load: Load) -> String {
    match load {
        Load::Concurrency(c) => c.to_string(),
        Load::Rate(r) => format!("{r}/s"),
    }
}

fn load_axis(report: &Report) -> &'static str {
    match report.levels.first().map(|l| l.load) {
        Some(Load::Rate(_)) => "request rate (requests/s)",
        _ => "concurrency (requests outstanding)",
    }
}

fn subtitle(report: &Report) -> String {
    match &report.engine {
        Some(engine) => format!(
            "{}, in-process ({engine}{}), batch {}",
            report.model,
            report
                .precision
                .as_ref()
                .map(|p| format!(", {p}"))
                .unwrap_or_default(),
            report.batch
        ),
        None => format!(
            "{}, {} at {}, batch {}",
            report.model, report.protocol, report.target, report.batch
        ),
    }
}

/// The distinct loads in sweep order: the x axis of the per-level charts.
fn loads(report: &Report) -> Vec<Load> {
    let mut loads: Vec<Load> = Vec::new();
    for level in &report.levels {
        if !loads.contains(&level.load) {
            loads.push(level.load);
        }
    }
    loads
}

/// Levels grouped into series: one per in-process arrangement, else one.
fn series(report: &Report) -> Vec<(String, Vec<&Level>)> {
    let mut series: Vec<(String, Vec<&Level>)> = Vec::new();
    for level in &report.levels {
        let name = level
            .arrangement
            .clone()
            .unwrap_or_else(|| report.protocol.clone());
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, levels)) => levels.push(level),
            None => series.push((name, vec![level])),
        }
    }
    series
}

/// A chart whose x axis has one evenly spaced position per load, labelled with it.
fn level_chart<'a, 'b>(
    root: &'a Area<'b>,
    report: &Report,
    title: &str,
    y_max: f64,
    y_desc: &str,
) -> anyhow::Result<ChartContext<'a, BitMapBackend<'b>, LevelAxes>> {
    let labels: Vec<String> = loads(report).into_iter().map(load_label).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.5..labels.len() as f64 - 0.5, 0.0..y_max)
        .map_err(plot_error)?;
    let label_of = |x: &f64| {
        let index = x.round();
        if (x - index).abs() < 1e-6 && index >= 0.0 {
            labels.get(index as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(labels.len())
        .x_label_formatter(&label_of)
        .x_desc(format!("{}   [{}]", load_axis(report), subtitle(report)))
        .y_desc(y_desc)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(plot_error)?;
    Ok(chart)
}

/// The position of `load` on a level chart's x axis.
fn x_of(report: &Report, load: Load) -> f64 {
    loads(report).iter().position(|&l| l == load).unwrap_or(0) as f64
}

fn throughput(report: &Report, root: &Area<'_>) -> anyhow::Result<()> {
    let y_max = report
        .levels
        .iter()
        .map(Level::throughput)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let mut chart = level_chart(root, report, "Throughput", y_max, "successful requests/s")?;
    for (i, (name, levels)) in series(report).into_iter().enumerate() {
        let color = color(i);
        let points: Vec<(f64, f64)> = levels
            .iter()
            .map(|l| (x_of(report, l.load), l.throughput()))
            .collect();
        line_with_points(&mut chart, name, color, points)?;
    }
    legend(&mut chart)
}

fn percentiles(report: &Report, root: &Area<'_>) -> anyhow::Result<()> {
    const QUANTILES: [(&str, f64); 4] =
        [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];
    let levels: Vec<&Level> = report
        .best()
        .into_iter()
        .filter(|l| !l.tally.latencies.is_empty())
        .collect();
    let ms = |level: &Level, q: f64| level.tally.latencies.value_at_quantile(q) as f64 / 1000.0;
    let y_max = levels
        .iter()
        .map(|l| ms(l, 0.999))
        .fold(0.0, f64::max)
        .max(0.001)
        * 1.15;
    let title = if report.engine.is_some() && series(report).len() > 1 {
        "Latency percentiles (best arrangement per level)"
    } else {
        "Latency percentiles"
    };
    let mut chart = level_chart(root, report, title, y_max, "latency (ms)")?;
    for (i, (name, quantile)) in QUANTILES.into_iter().enumerate() {
        let color = color(i);
        let points: Vec<(f64, f64)> = levels
            .iter()
            .map(|l| (x_of(report, l.load), ms(l, quantile)))
            .collect();
        line_with_points(&mut chart, name, color, points)?;
    }
    legend(&mut chart)
}

/// Latency against percentile, with the percentile axis as 1/(1-q) on a log scale:
/// 1 is p0, 10 is p90, 100 is p99, and so on to the level's last request.
fn distribution(report: &Report, root: &Area<'_>) -> anyhow::Result<()> {
    let levels: Vec<&Level> = report
        .best()
        .into_iter()
        .filter(|l| !l.tally.latencies.is_empty())
        .collect();
    let count = levels
        .iter()
        .map(|l| l.tally.latencies.len())
        .max()
        .unwrap_or(1);
    let x_max = (count as f64).max(10.0);
    let y_max = levels
        .iter()
        .map(|l| l.tally.latencies.max() as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(0.001)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption("Latency distribution", (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x: &f64| percentile_label(*x))
        .x_desc(format!("percentile   [{}]", subtitle(report)))
        .y_desc("latency (ms)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(plot_error)?;
    for (i, level) in levels.iter().enumerate() {
        let color = color(i);
        let latencies = &level.tally.latencies;
        let last = (latencies.len() as f64).max(1.0);
        let steps = 200;
        let mut points: Vec<(f64, f64)> = (0..=steps)
            .map(|s| {
                let x = last.powf(s as f64 / steps as f64);
                let quantile = 1.0 - 1.0 / x;
                (x, latencies.value_at_quantile(quantile) as f64 / 1000.0)
            })
            .collect();
        // The slowest request, which the last quantile step may not reach.
        points.push((last, latencies.max() as f64 / 1000.0));
        let load = match level.load {
            Load::Concurrency(c) => format!("c={c}"),
            Load::Rate(r) => format!("{r}/s"),
        };
        let label = match &level.arrangement {
            Some(arrangement) => format!("{load} ({arrangement})"),
            None => load,
        };
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    legend(&mut chart)
}

/// `1` → `p0`, `10` → `p90`, `1000` → `p99.9`.
fn percentile_label(x: f64) -> String {
    let percent = 100.0 * (1.0 - 1.0 / x);
    let text = format!("{percent:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

/// One labelled series: a line through `points`, with a dot at each.
fn line_with_points<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, LevelAxes>,
    name: impl Into<String>,
    color: RGBColor,
    points: Vec<(f64, f64)>,
) -> anyhow::Result<()> {
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
        .map_err(plot_error)?
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )
        .map_err(plot_error)?;
    Ok(())
}

fn legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 15))
        .draw()
        .map_err(plot_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_percentiles() {
        assert_eq!(percentile_label(1.0), "p0");
        assert_eq!(percentile_label(10.0), "p90");
        assert_eq!(percentile_label(1000.0), "p99.9");
        assert_eq!(percentile_label(2.0), "p50");
    }
}
