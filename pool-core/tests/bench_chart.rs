//! The benchmark's SVG chart writer (`benches/compare/chart.rs`, compiled in here): what
//! the README's chart is made of.

#[allow(dead_code)]
#[path = "../benches/compare/chart.rs"]
mod chart;

use std::time::Duration;

use chart::{Bar, Results, Who};

fn bar(who: Who, throughput: f64, p99_us: Option<u64>) -> Bar {
    Bar {
        who,
        throughput,
        p99: p99_us.map(Duration::from_micros),
    }
}

#[test]
fn each_workload_is_scaled_to_its_own_largest_bar_and_labelled() {
    let mut results = Results::default();
    // Added in the order a workload happens to run them; drawn pool-core, r2d2, floor.
    results.add("W3 8 thr", bar(Who::R2d2, 1e6, Some(400)));
    results.add("W3 8 thr", bar(Who::PoolCore, 2e6, Some(100)));
    results.add("W3 8 thr", bar(Who::Floor, 4e6, Some(200)));
    results.add("W1 1 thread", bar(Who::Floor, 30e6, None));
    let svg = results.svg("2 cores & <noise>");

    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    // Text is escaped (the floor is a Mutex<Vec>, the note is free text).
    assert!(svg.contains("floor Mutex&lt;Vec&gt;") && !svg.contains("Mutex<Vec>"));
    assert!(svg.contains("2 cores &amp; &lt;noise&gt;"));
    // Numbers people read.
    for text in [
        "2.0 M/s",
        "4.0 M/s",
        "30.0 M/s",
        "100 µs",
        "400 µs",
        "not timed",
    ] {
        assert!(svg.contains(text), "{text} missing from:\n{svg}");
    }
    // Widths: the throughput bars of W3 are 1/2, 1/4 and 1 of the panel's bar length;
    // W1's only bar is full length although its value is far larger.
    let widths: Vec<f64> = svg
        .match_indices("width=\"")
        .skip(2) // the <svg> and the background
        .map(|(at, m)| {
            let rest = &svg[at + m.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .filter(|w: &f64| *w > 12.0) // not the legend's squares
        .collect();
    // Per bar: the throughput width, then the p99 width (W1 has no p99 bar).
    let [pool_tp, pool_p99, r2d2_tp, r2d2_p99, floor_tp, floor_p99, w1_tp] = widths[..] else {
        panic!("7 bars expected, got {widths:?}");
    };
    assert!((pool_tp / floor_tp - 0.5).abs() < 0.01, "{widths:?}");
    assert!((r2d2_tp / floor_tp - 0.25).abs() < 0.01, "{widths:?}");
    assert!((pool_p99 / r2d2_p99 - 0.25).abs() < 0.01, "{widths:?}");
    assert!((floor_p99 / r2d2_p99 - 0.5).abs() < 0.01, "{widths:?}");
    assert!((w1_tp - floor_tp).abs() < 0.01, "{widths:?}");
    // A workload without timed waits says so once.
    assert_eq!(svg.matches("not timed").count(), 1);
}
