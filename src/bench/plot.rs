//! `sockit bench plot`: a run's time series drawn as an SVG file, latency
//! percentiles over time above, throughput (and the open loop's rate)
//! below. Drawn with `plotters`' SVG backend: text is SVG text, so no font
//! or system library is needed.

use std::path::Path;

use plotters::prelude::*;

use super::report::{Report, Second};
use super::BenchError;

/// The drawing's size in pixels.
const SIZE: (u32, u32) = (1000, 700);

/// Reads the series of `path`: a `--series` file (`.csv`, or JSON lines)
/// or a run saved with `--save`.
///
/// # Errors
///
/// [`BenchError::File`] when it cannot be read, [`BenchError::Format`] when
/// it is none of these.
pub fn read_series(path: &Path) -> Result<Vec<Second>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::file("read", path, e))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("csv") {
        return parse_csv(path, &text);
    }
    if let Ok(report) = Report::load(path) {
        return Ok(report.series);
    }
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: Second = serde_json::from_str(line).map_err(|e| {
            BenchError::format(
                path,
                format!("line {}: not a series row nor a saved run ({e})", i + 1),
            )
        })?;
        rows.push(row);
    }
    Ok(rows)
}

fn parse_csv(path: &Path, text: &str) -> Result<Vec<Second>, BenchError> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let column = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| {
            BenchError::format(
                path,
                format!("no '{name}' column: expected a CSV written by --series"),
            )
        })
    };
    let columns = [
        "second",
        "sent",
        "completed",
        "errors",
        "rate",
        "p50_us",
        "p99_us",
        "max_us",
    ]
    .map(column);
    let mut at = [0usize; 8];
    for (slot, c) in at.iter_mut().zip(columns) {
        *slot = c?;
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let number = |k: usize| -> Result<Option<f64>, BenchError> {
            let field = fields.get(at[k]).map_or("", |f| f.trim());
            if field.is_empty() {
                return Ok(None);
            }
            field.parse::<f64>().map(Some).map_err(|_| {
                BenchError::format(path, format!("line {}: '{field}' is not a number", i + 2))
            })
        };
        let count = |k: usize| number(k).map(|v| v.unwrap_or(0.0).max(0.0) as u64);
        rows.push(Second::from_parts(
            count(0)?,
            count(1)?,
            count(2)?,
            count(3)?,
            number(4)?,
            [number(5)?, number(6)?, number(7)?].map(|v| v.unwrap_or(0.0)),
        ));
    }
    Ok(rows)
}

/// Draws `series` into an SVG document titled `title`.
///
/// # Errors
///
/// [`BenchError::Format`] when there is nothing to draw or drawing fails.
pub fn svg(series: &[Second], title: &str, path: &Path) -> Result<String, BenchError> {
    if series.is_empty() {
        return Err(BenchError::format(path, "the series has no rows to plot"));
    }
    let mut out = String::new();
    draw(series, title, &mut out)
        .map_err(|e| BenchError::format(path, format!("cannot draw the plot: {e}")))?;
    Ok(out)
}

/// Writes the plot of `input`'s series to `output` (SVG).
///
/// # Errors
///
/// As [`read_series`] and [`svg`], and [`BenchError::File`] when `output`
/// cannot be written.
pub fn plot_file(input: &Path, output: &Path) -> Result<(), BenchError> {
    let series = read_series(input)?;
    let title = input
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let document = svg(&series, &title, input)?;
    std::fs::write(output, document).map_err(|e| BenchError::file("write", output, e))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A line of the plot: its legend, colour, and value per second.
type Line = (&'static str, RGBColor, fn(&Second) -> f64);

fn draw(series: &[Second], title: &str, out: &mut String) -> DrawResult {
    let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&format!("sockit bench: {title}"), ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
    let seconds = series.len() as f64;
    let ms = |us: f64| us / 1000.0;

    let top_y = series
        .iter()
        .map(|s| ms(s.max_us))
        .fold(0.0, f64::max)
        .max(0.001)
        * 1.05;
    let mut latency = ChartBuilder::on(&top)
        .caption(
            "latency of the replies completed each second",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds, 0f64..top_y)?;
    latency
        .configure_mesh()
        .x_desc("second")
        .y_desc("ms")
        .draw()?;
    let lines: [Line; 3] = [
        ("p50", BLUE, |s| s.p50_us),
        ("p99", RGBColor(230, 120, 0), |s| s.p99_us),
        ("max", RED, |s| s.max_us),
    ];
    for (name, color, value) in lines {
        let points = series
            .iter()
            .filter(|s| s.completed > 0)
            .map(|s| (s.second as f64 + 0.5, ms(value(s))));
        latency
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let rate = |s: &Second| s.rate.unwrap_or(0.0);
    let bottom_y = series
        .iter()
        .map(|s| (s.completed as f64).max(s.sent as f64).max(rate(s)))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.05;
    let mut throughput = ChartBuilder::on(&bottom)
        .caption("requests per second", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds, 0f64..bottom_y)?;
    throughput
        .configure_mesh()
        .x_desc("second")
        .y_desc("req/s")
        .draw()?;
    let mut lines: Vec<Line> = vec![
        ("completed", GREEN, |s| s.completed as f64),
        ("errors", RED, |s| s.errors as f64),
    ];
    if series.iter().any(|s| s.rate.is_some()) {
        lines.push(("rate (scheduled)", BLACK, |s| s.rate.unwrap_or(0.0)));
    }
    for (name, color, value) in lines {
        let points = series.iter().map(|s| (s.second as f64 + 0.5, value(s)));
        throughput
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    throughput
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
