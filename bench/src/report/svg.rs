//! A small SVG line-chart writer: linear or logarithmic y axis, a legend, reference lines and
//! shaded bands. Enough for the report's plots without a plotting crate.

use std::fmt::Write as _;

const W: f64 = 900.0;
const H: f64 = 440.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 225.0;
const TOP: f64 = 42.0;
const BOTTOM: f64 = 52.0;
const COLORS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points; non-finite values break the line.
    pub points: Vec<(f64, f64)>,
    /// Draw dots at the points.
    pub markers: bool,
}

impl Series {
    /// A line without markers.
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points, markers: false }
    }

    /// A line with markers.
    pub fn dots(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points, markers: true }
    }
}

/// A chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Lines.
    pub series: Vec<Series>,
    /// Logarithmic y axis.
    pub y_log: bool,
    /// Fixed y range (otherwise from the data).
    pub y_range: Option<(f64, f64)>,
    /// Horizontal reference lines `(y, label)`.
    pub hlines: Vec<(f64, String)>,
    /// Vertical reference lines `(x, label)`.
    pub vlines: Vec<(f64, String)>,
    /// Shaded x ranges `(from, to, label)`.
    pub bands: Vec<(f64, f64, String)>,
}

impl Chart {
    /// The SVG document.
    pub fn render(&self) -> String {
        let pts = || {
            self.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite())
        };
        let (mut x0, mut x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        for (a, b, _) in &self.bands {
            (x0, x1) = (x0.min(*a), x1.max(*b));
        }
        if x0 > x1 {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            x1 = x0 + 1.0;
        }
        let ys = || pts().map(|p| p.1).filter(|y| !self.y_log || *y > 0.0);
        let (mut y0, mut y1) = self.y_range.unwrap_or_else(|| {
            let (lo, hi) = ys()
                .chain(self.hlines.iter().map(|h| h.0))
                .fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
            if self.y_log {
                (lo, hi)
            } else {
                (lo.min(0.0), hi)
            }
        });
        if y0 > y1 {
            (y0, y1) = if self.y_log { (0.1, 10.0) } else { (0.0, 1.0) };
        }
        let y_ticks;
        if self.y_log {
            y0 = 10f64.powf(y0.max(1e-6).log10().floor());
            y1 = 10f64.powf(y1.max(y0 * 10.0).log10().ceil());
            y_ticks = log_ticks(y0, y1);
        } else {
            let step = nice_step((y1 - y0).max(1e-9) / 6.0);
            y0 = (y0 / step).floor() * step;
            y1 = ((y1 / step).ceil() * step).max(y0 + step);
            y_ticks = ticks(y0, y1, step);
        }
        let x_step = nice_step((x1 - x0) / 8.0);
        let x_ticks = ticks((x0 / x_step).ceil() * x_step, x1, x_step);
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| {
            let f = if self.y_log {
                (y.max(y0).log10() - y0.log10()) / (y1.log10() - y0.log10())
            } else {
                (y - y0) / (y1 - y0)
            };
            TOP + ph - f.clamp(-0.02, 1.02) * ph
        };

        let mut s = String::new();
        let _ = write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"##
        );
        let _ = write!(s, r##"<rect width="{W}" height="{H}" fill="white"/>"##);
        let _ = write!(
            s,
            r##"<text x="{}" y="24" font-size="15" font-weight="bold">{}</text>"##,
            LEFT,
            esc(&self.title)
        );
        for (i, (a, b, label)) in self.bands.iter().enumerate() {
            let fill = if i.is_multiple_of(2) { "#f2f2f2" } else { "#e6e6e6" };
            let _ = write!(
                s,
                r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{ph}" fill="{fill}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#555" text-anchor="middle">{}</text>"##,
                sx(*a),
                (sx(*b) - sx(*a)).max(0.0),
                (sx(*a) + sx(*b)) / 2.0,
                TOP + 12.0,
                esc(label)
            );
        }
        for y in &y_ticks {
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                sy(*y),
                sy(*y),
                LEFT - 6.0,
                sy(*y) + 4.0,
                fmt_num(*y)
            );
        }
        for x in &x_ticks {
            let _ = write!(
                s,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{TOP}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                sx(*x),
                sx(*x),
                TOP + ph,
                sx(*x),
                TOP + ph + 16.0,
                fmt_num(*x)
            );
        }
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
        );
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
            LEFT + pw / 2.0,
            H - 12.0,
            esc(&self.x_label),
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        for (y, label) in &self.hlines {
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
                LEFT + pw,
                sy(*y),
                sy(*y),
                LEFT + 4.0,
                sy(*y) - 4.0,
                esc(label)
            );
        }
        for (x, label) in &self.vlines {
            let _ = write!(
                s,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{TOP}" y2="{:.1}" stroke="#000" stroke-dasharray="2,3"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
                sx(*x),
                sx(*x),
                TOP + ph,
                sx(*x) + 4.0,
                TOP + ph - 6.0,
                esc(label)
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut d = String::new();
            let mut pen_down = false;
            for &(x, y) in &series.points {
                if !(x.is_finite() && y.is_finite()) || (self.y_log && y <= 0.0) {
                    pen_down = false;
                    continue;
                }
                let _ = write!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, sx(x), sy(y));
                pen_down = true;
            }
            let _ =
                write!(s, r##"<path d="{}" fill="none" stroke="{color}" stroke-width="2"/>"##, d.trim_end());
            if series.markers {
                for &(x, y) in series
                    .points
                    .iter()
                    .filter(|p| p.0.is_finite() && p.1.is_finite() && (!self.y_log || p.1 > 0.0))
                {
                    let _ =
                        write!(s, r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"##, sx(x), sy(y));
                }
            }
            let ly = TOP + 10.0 + i as f64 * 18.0;
            let lx = LEFT + pw + 14.0;
            let _ = write!(
                s,
                r##"<line x1="{lx}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"##,
                lx + 22.0,
                lx + 28.0,
                ly + 4.0,
                esc(&series.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn ticks(from: f64, to: f64, step: f64) -> Vec<f64> {
    let n = ((to - from) / step + 1e-9).floor() as i64;
    (0..=n.clamp(0, 100)).map(|i| from + i as f64 * step).collect()
}

fn log_ticks(from: f64, to: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut decade = from;
    while decade <= to * 1.0001 && v.len() < 60 {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t <= to * 1.0001 {
                v.push(t);
            }
        }
        decade *= 10.0;
    }
    v
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        let s = format!("{v:.0}");
        // Thousands separators keep large rates readable.
        let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 10.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lines_axes_and_escapes_text() {
        let chart = Chart {
            title: "p99 < target & more".into(),
            x_label: "offered".into(),
            y_label: "ms".into(),
            series: vec![
                Series::dots("p50", vec![(100.0, 1.0), (200.0, 2.0), (300.0, f64::NAN), (400.0, 50.0)]),
                Series::line("p99", vec![(100.0, 3.0), (400.0, 900.0)]),
            ],
            y_log: true,
            hlines: vec![(100.0, "target".into())],
            vlines: vec![(250.0, "knee".into())],
            bands: vec![(100.0, 200.0, "a".into())],
            ..Chart::default()
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("p99 &lt; target &amp; more"));
        // The NaN point breaks the p50 line: two sub-paths.
        let p50 = svg.split("<path d=\"").nth(1).unwrap();
        assert_eq!(p50.split('"').next().unwrap().matches('M').count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains(">1,000<"), "log ticks up to the decade above 900");
    }

    #[test]
    fn numbers_and_steps() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(230.0), 250.0);
        assert_eq!(fmt_num(12345.0), "12,345");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(ticks(0.0, 1.0, 0.25).len(), 5);
    }
}
