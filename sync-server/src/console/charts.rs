//! Chart geometry for the console's inline SVG charts: plain functions over plain numbers.
//! The templates draw the shapes and escape every label, so no markup is built here.

/// Width of a column chart's drawing, in SVG units.
const WIDTH: f64 = 640.0;
/// Height of a column chart's drawing.
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// The most x-axis labels a chart prints (the data table has every one).
const MAX_X_LABELS: usize = 8;

/// A number that can be printed with thousands separators.
pub trait AsCount {
    /// The number.
    fn count(&self) -> i64;
}

impl AsCount for i64 {
    fn count(&self) -> i64 {
        *self
    }
}

impl AsCount for i32 {
    fn count(&self) -> i64 {
        i64::from(*self)
    }
}

impl AsCount for u64 {
    fn count(&self) -> i64 {
        i64::try_from(*self).unwrap_or(i64::MAX)
    }
}

impl AsCount for usize {
    fn count(&self) -> i64 {
        i64::try_from(*self).unwrap_or(i64::MAX)
    }
}

impl<T: AsCount + ?Sized> AsCount for &T {
    fn count(&self) -> i64 {
        (**self).count()
    }
}

/// `12345` as `12,345`.
pub fn num(value: impl AsCount) -> String {
    let value = value.count();
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One series of a column chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: &'static str,
    /// CSS class of its bars (the stylesheet colours them).
    pub class: &'static str,
    /// One value per label.
    pub values: Vec<i64>,
}

/// A bar to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// CSS class.
    pub class: &'static str,
    /// Tooltip: label, series and value.
    pub title: String,
}

/// A label on an axis.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisLabel {
    /// Position along the axis.
    pub at: f64,
    /// Text.
    pub text: String,
}

/// One row of the data table under a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The x label.
    pub label: String,
    /// The series' values, formatted.
    pub values: Vec<String>,
}

/// A column chart, ready to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Heading and accessible name.
    pub title: String,
    /// Legend: (name, class).
    pub legend: Vec<(&'static str, &'static str)>,
    /// The bars.
    pub bars: Vec<Bar>,
    /// Y-axis ticks (`at` is the y coordinate).
    pub y_ticks: Vec<AxisLabel>,
    /// X-axis labels (`at` is the centre x).
    pub x_labels: Vec<AxisLabel>,
    /// The numbers, for the table.
    pub rows: Vec<Row>,
    /// SVG width.
    pub width: f64,
    /// SVG height.
    pub height: f64,
    /// Left end of the plot (the y axis).
    pub left: f64,
    /// Right end of the plot.
    pub right: f64,
    /// The y of the zero line.
    pub baseline: f64,
    /// Whether there is nothing to show.
    pub empty: bool,
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `value` (at least 1).
pub fn nice_ceiling(value: i64) -> i64 {
    let value = value.max(1);
    let mut step = 1_i64;
    loop {
        for factor in [1, 2, 5] {
            let candidate = step.saturating_mul(factor);
            if candidate >= value {
                return candidate;
            }
        }
        if step > i64::MAX / 10 {
            return i64::MAX;
        }
        step *= 10;
    }
}

/// A column chart of `series` over `labels` (one value per label in each series); a value
/// below zero is drawn as zero (the table shows it).
pub fn columns(
    title: impl Into<String>,
    labels: &[String],
    series: Vec<Series>,
    unit: &str,
) -> Chart {
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let baseline = TOP + plot_height;
    let largest = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(largest);
    let groups = labels.len().max(1);
    let group_width = plot_width / groups as f64;
    let bar_width = group_width * 0.8 / series.len().max(1) as f64;
    let mut bars = Vec::new();
    for (index, label) in labels.iter().enumerate() {
        let group_left = LEFT + group_width * index as f64 + group_width * 0.1;
        for (position, one) in series.iter().enumerate() {
            let value = one.values.get(index).copied().unwrap_or(0);
            let height = plot_height * value.max(0) as f64 / top as f64;
            bars.push(Bar {
                x: round1(group_left + bar_width * position as f64),
                y: round1(baseline - height),
                width: round1(bar_width.max(0.5)),
                height: round1(height),
                class: one.class,
                title: format!("{label}: {} {}{unit}", one.name, num(value)),
            });
        }
    }
    let y_ticks = [0, top / 2, top]
        .iter()
        .map(|tick| AxisLabel {
            at: round1(baseline - plot_height * *tick as f64 / top as f64),
            text: format!("{}{unit}", num(*tick)),
        })
        .collect();
    let every = labels.len().div_ceil(MAX_X_LABELS).max(1);
    let x_labels = labels
        .iter()
        .enumerate()
        .filter(|(index, _)| index % every == 0)
        .map(|(index, label)| AxisLabel {
            at: round1(LEFT + group_width * (index as f64 + 0.5)),
            text: label.clone(),
        })
        .collect();
    let rows = labels
        .iter()
        .enumerate()
        .map(|(index, label)| Row {
            label: label.clone(),
            values: series
                .iter()
                .map(|s| format!("{}{unit}", num(s.values.get(index).copied().unwrap_or(0))))
                .collect(),
        })
        .collect();
    Chart {
        title: title.into(),
        legend: series.iter().map(|s| (s.name, s.class)).collect(),
        empty: labels.is_empty(),
        bars,
        y_ticks,
        x_labels,
        rows,
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right: WIDTH - RIGHT,
        baseline,
    }
}

/// A horizontal gauge: a value against marked thresholds, e.g. a cadence against the running
/// and the impossible cadence.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// SVG width.
    pub width: f64,
    /// Length of the value's bar.
    pub value_width: f64,
    /// The value, formatted.
    pub value_text: String,
    /// Threshold marks (`at` is the x coordinate).
    pub marks: Vec<AxisLabel>,
    /// Whether the value is past the first mark.
    pub over: bool,
}

/// A gauge of `value` on a scale up to a bit past the largest of `value` and the marks.
pub fn gauge(value: f64, marks: &[(&str, f64)], unit: &str) -> Gauge {
    const GAUGE_WIDTH: f64 = 320.0;
    let value = if value.is_finite() {
        value.max(0.0)
    } else {
        0.0
    };
    let largest = marks
        .iter()
        .map(|(_, at)| *at)
        .fold(value, f64::max)
        .max(1.0)
        * 1.1;
    let scale = |v: f64| round1(GAUGE_WIDTH * v / largest);
    Gauge {
        width: GAUGE_WIDTH,
        value_width: scale(value),
        value_text: format!("{value:.0} {unit}"),
        marks: marks
            .iter()
            .map(|(name, at)| AxisLabel {
                at: scale(*at),
                text: format!("{name} {at:.0}"),
            })
            .collect(),
        over: marks.first().is_some_and(|(_, first)| value > *first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(num(0_i64), "0");
        assert_eq!(num(999_i64), "999");
        assert_eq!(num(1000_i64), "1,000");
        assert_eq!(num(-1234567_i64), "-1,234,567");
        assert_eq!(num(42_i32), "42");
    }

    #[test]
    fn the_scale_ends_on_a_round_number_at_or_above_the_largest_value() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(12_345), 20_000);
        assert_eq!(nice_ceiling(50_000), 50_000);
        assert_eq!(nice_ceiling(i64::MAX), i64::MAX);
    }

    #[test]
    fn bars_are_as_tall_as_their_share_of_the_scale_and_stay_inside_the_plot() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let chart = columns(
            "t",
            &labels,
            vec![
                Series {
                    name: "issued",
                    class: "s1",
                    values: vec![100, 50, -3],
                },
                Series {
                    name: "spent",
                    class: "s2",
                    values: vec![0, 25, 10],
                },
            ],
            "",
        );
        assert_eq!(chart.bars.len(), 6);
        let full = chart.baseline - TOP;
        assert_eq!(chart.bars[0].height, round1(full));
        assert_eq!(chart.bars[2].height, round1(full / 2.0));
        assert_eq!(chart.bars[4].height, 0.0, "negative values draw as zero");
        for bar in &chart.bars {
            assert!(bar.x >= chart.left && bar.x + bar.width <= chart.right + 0.1);
            assert!(bar.y >= TOP - 0.1 && bar.y + bar.height <= chart.baseline + 0.1);
        }
        assert_eq!(chart.bars[1].title, "a: spent 0");
        assert_eq!(chart.rows[2].values, vec!["-3", "10"]);
        assert_eq!(chart.y_ticks.last().unwrap().text, "100");
    }

    #[test]
    fn long_axes_print_at_most_a_few_labels() {
        let labels: Vec<String> = (1..=30).map(|d| format!("11-{d:02}")).collect();
        let chart = columns(
            "t",
            &labels,
            vec![Series {
                name: "steps",
                class: "s1",
                values: vec![1; 30],
            }],
            "",
        );
        assert!(chart.x_labels.len() <= MAX_X_LABELS);
        assert_eq!(chart.rows.len(), 30);
        assert!(columns("t", &[], vec![], "").empty);
    }

    #[test]
    fn a_gauge_marks_thresholds_and_says_when_the_value_passes_the_first() {
        let gauge = gauge(250.0, &[("running", 200.0), ("impossible", 600.0)], "spm");
        assert!(gauge.over);
        assert!(gauge.value_width < gauge.marks[1].at);
        assert!(gauge.marks[1].at <= gauge.width);
        assert_eq!(gauge.value_text, "250 spm");
        assert!(!super::gauge(150.0, &[("running", 200.0)], "spm").over);
    }
}
