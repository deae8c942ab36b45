//! The benchmark's results as an SVG chart (`-- --svg PATH`): per workload, throughput and
//! p99 wait of pool-core, r2d2 and the `Mutex<Vec>` floor, as horizontal bars. Written by
//! hand: no plotting crate.
//!
//! Workloads differ by orders of magnitude (one thread uncontended: tens of millions of
//! cycles a second; 100 µs holds: tens of thousands), so each workload's bars are scaled
//! to its own largest value, and every bar carries its number.

use std::fmt::Write as _;
use std::time::Duration;

/// One contender's figures in one workload.
pub struct Bar {
    /// Who (pool-core, r2d2, floor).
    pub who: Who,
    /// Acquire+release cycles per second.
    pub throughput: f64,
    /// 99th percentile of the wait in acquire, when the workload times waits.
    pub p99: Option<Duration>,
}

/// The contenders the chart shows (the printed tables have more variants).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Who {
    PoolCore,
    R2d2,
    Floor,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::PoolCore => "pool-core",
            Who::R2d2 => "r2d2",
            Who::Floor => "floor Mutex<Vec>",
        }
    }
    fn color(self) -> &'static str {
        match self {
            Who::PoolCore => "#f58518",
            Who::R2d2 => "#4c78a8",
            Who::Floor => "#9d9d9d",
        }
    }
}

/// The results, workload by workload, in the order they ran.
#[derive(Default)]
pub struct Results {
    groups: Vec<(String, Vec<Bar>)>,
}

impl Results {
    /// Adds `bar` to workload `name` (created on first use); a workload's bars are kept
    /// in one order (pool-core, r2d2, floor), whatever order they ran in.
    pub fn add(&mut self, name: &str, bar: Bar) {
        match self.groups.iter_mut().find(|(n, _)| n == name) {
            Some((_, bars)) => {
                bars.push(bar);
                bars.sort_by_key(|b| b.who as u8);
            }
            None => self.groups.push((name.to_owned(), vec![bar])),
        }
    }

    /// The chart; `note` is printed under the title (the machine, the command).
    pub fn svg(&self, note: &str) -> String {
        const WIDTH: f64 = 960.0;
        const LABEL: f64 = 170.0; // the workload names
        const PANEL: f64 = (WIDTH - LABEL - 30.0) / 2.0;
        const BAR: f64 = 14.0;
        const GAP: f64 = 18.0;
        const TOP: f64 = 96.0;
        let height = TOP
            + self
                .groups
                .iter()
                .map(|(_, bars)| bars.len() as f64 * BAR + GAP)
                .sum::<f64>()
            + 30.0;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" font-family=\"system-ui, sans-serif\" \
             font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n\
             <text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"600\">pool-core vs r2d2 vs \
             a Mutex&lt;Vec&gt; floor: no-op connections</text>\n\
             <text x=\"10\" y=\"40\" fill=\"#666\">{}</text>\n",
            xml(note)
        );
        let panels = [
            (
                LABEL,
                "throughput (acquire+release per second; longer is better)",
            ),
            (
                LABEL + PANEL + 30.0,
                "p99 wait in acquire (shorter is better)",
            ),
        ];
        for (x, title) in panels {
            let _ = writeln!(
                s,
                "<text x=\"{x}\" y=\"84\" font-weight=\"600\">{}</text>",
                xml(title)
            );
        }
        // The legend.
        let mut lx = 10.0;
        for who in [Who::PoolCore, Who::R2d2, Who::Floor] {
            let _ = writeln!(
                s,
                "<rect x=\"{lx}\" y=\"52\" width=\"12\" height=\"12\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"62\">{}</text>",
                who.color(),
                lx + 16.0,
                xml(who.label())
            );
            lx += 30.0 + 7.0 * who.label().len() as f64;
        }
        let mut y = TOP;
        for (name, bars) in &self.groups {
            let block = bars.len() as f64 * BAR;
            let _ = writeln!(
                s,
                "<line x1=\"10\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#eee\"/>\
                 <text x=\"10\" y=\"{}\" font-weight=\"600\">{}</text>",
                WIDTH - 10.0,
                y - GAP / 2.0 + 2.0,
                y - GAP / 2.0 + 2.0,
                y + block / 2.0 + 4.0,
                xml(name)
            );
            let top_tp = bars.iter().map(|b| b.throughput).fold(0.0, f64::max);
            let top_p99 = bars
                .iter()
                .filter_map(|b| b.p99)
                .max()
                .unwrap_or_default()
                .as_secs_f64();
            for (i, bar) in bars.iter().enumerate() {
                let by = y + i as f64 * BAR;
                let tp_width = (PANEL - 90.0) * ratio(bar.throughput, top_tp);
                bar_svg(
                    &mut s,
                    LABEL,
                    by,
                    BAR,
                    tp_width,
                    bar.who,
                    &rate(bar.throughput),
                );
                let x = LABEL + PANEL + 30.0;
                match bar.p99 {
                    Some(p99) => {
                        let w = (PANEL - 90.0) * ratio(p99.as_secs_f64(), top_p99);
                        bar_svg(&mut s, x, by, BAR, w, bar.who, &wait(p99));
                    }
                    None if i > 0 => {} // said once per workload
                    None => {
                        let _ = writeln!(
                            s,
                            "<text x=\"{x}\" y=\"{}\" fill=\"#999\">not timed (the workload's \
                             loop does not read the clock)</text>",
                            by + BAR - 3.0
                        );
                    }
                }
            }
            y += block + GAP;
        }
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{}\" fill=\"#666\">p99 alone does not show starvation: \
             the printed table has each pool's max wait and Jain fairness index.</text>",
            height - 12.0
        );
        s.push_str("</svg>\n");
        s
    }
}

/// One bar and its number after it.
fn bar_svg(s: &mut String, x: f64, y: f64, h: f64, w: f64, who: Who, text: &str) {
    let _ = writeln!(
        s,
        "<rect x=\"{x}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        y + 1.0,
        w.max(1.0),
        h - 2.0,
        who.color(),
        x + w.max(1.0) + 4.0,
        y + h - 3.0,
        xml(text)
    );
}

/// `v / top` in 0..=1 (0 for an empty group).
fn ratio(v: f64, top: f64) -> f64 {
    if top > 0.0 {
        (v / top).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// A rate as people read it: `31.2 M/s`, `812 k/s`, `950/s`.
fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.1} M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.0} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}/s")
    }
}

/// A wait as people read it.
fn wait(d: Duration) -> String {
    pool_core::HumanDuration(d).to_string()
}

/// `text` escaped for XML.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
