//! The latency chart of `docs/performance.md`: end-to-end p50 and p99
//! against circle size, kolo and baseline, as a small hand-written SVG.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

pub fn latency_chart(doc: &Value, path: &Path) -> Result<()> {
    let rows = doc["rows"].as_array().cloned().unwrap_or_default();
    let xs: Vec<f64> = rows.iter().filter_map(|r| r["n"].as_f64()).collect();
    let series = [
        ("kolo p99", "kolo", "p99_ms", "#c0392b", ""),
        ("kolo p50", "kolo", "p50_ms", "#c0392b", "6,4"),
        ("gossipsub p99", "baseline", "p99_ms", "#2c3e50", ""),
        ("gossipsub p50", "baseline", "p50_ms", "#2c3e50", "6,4"),
    ];
    let values =
        |sys: &str, key: &str| -> Vec<f64> { rows.iter().map(|r| r[sys][key].as_f64().unwrap_or(0.0)).collect() };
    let ymax = series.iter().flat_map(|(_, s, k, _, _)| values(s, k)).fold(1.0f64, f64::max) * 1.15;
    let (xmin, xmax) = (xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(0.0f64, f64::max));
    let px = |x: f64| LEFT + (x - xmin) / (xmax - xmin).max(1.0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / ymax * (H - TOP - BOTTOM);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">End-to-end delivery to every member (64 B), loopback</text>"#,
        (W - RIGHT + LEFT) / 2.0
    );
    // Axes, grid and ticks.
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#000"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#000"/>"##,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    for i in 0..=5 {
        let y = ymax * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{y:.1}</text>"##,
            py(y),
            W - RIGHT,
            LEFT - 6.0,
            py(y) + 4.0
        );
    }
    for x in &xs {
        let _ = writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{x}</text>"#, px(*x), H - BOTTOM + 18.0);
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">members in the circle</text>"#,
        px((xmin + xmax) / 2.0),
        H - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">milliseconds</text>"#,
        (H - BOTTOM + TOP) / 2.0
    );
    for (i, (label, sys, key, colour, dash)) in series.iter().enumerate() {
        let pts: Vec<String> =
            xs.iter().zip(values(sys, key)).map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(y))).collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
        }
        let ly = TOP + 20.0 + i as f64 * 20.0;
        let lx = W - RIGHT + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{}">{label}</text>"#,
            lx + 25.0,
            lx + 30.0,
            ly + 4.0
        );
    }
    let _ = writeln!(s, "</svg>");
    std::fs::write(path, s)?;
    println!("wrote {}", path.display());
    Ok(())
}
