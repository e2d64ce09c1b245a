//! The window as a chart: per capture point, packets per second and the
//! moments that matter (RSTs, retransmits, connects, failed connects);
//! below, the node's eBPF events and log lines; the findings' moments as
//! red lines across all of it. Drawn as SVG by `plotters`.

use super::sections::Collected;
use super::sql::{FLOWS, clock, grid, int, lit};
use crate::error::Error;
use datafusion::prelude::SessionContext;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;

/// A moment a finding points at.
pub struct Moment {
    pub ns: i64,
    /// What the chart writes beside its line (the finding's number).
    pub label: String,
}

/// The chart of one node's window and its numbers in words.
pub struct Timeline {
    pub host: String,
    pub window: String,
    pub bucket: String,
    /// Why the chart covers more than the collection window, if it does.
    pub widened: String,
    pub svg: String,
    /// One line per capture point and lane, for markdown.
    pub lines: Vec<String>,
}

/// Bucket widths to choose from, in milliseconds.
const BUCKETS_MS: &[i64] = &[
    10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000,
    300_000, 600_000, 1_800_000, 3_600_000,
];
/// How far a finding's moment may lie outside the collection window and
/// still widen the chart to it.
const MAX_WIDEN_NS: i64 = 15 * 60 * 1_000_000_000;
/// Most buckets a window is cut into.
const MAX_BUCKETS: i64 = 150;

/// One row of marks: a name and (bucket, count) pairs.
struct Lane {
    name: String,
    counts: BTreeMap<i64, i64>,
    color: RGBColor,
}

/// One capture point: packets per bucket and its lanes.
struct Point {
    name: String,
    packets: BTreeMap<i64, i64>,
    lanes: Vec<Lane>,
}

const BLUE: RGBColor = RGBColor(37, 99, 235);
const RED_: RGBColor = RGBColor(220, 38, 38);
const ORANGE: RGBColor = RGBColor(234, 88, 12);
const GREEN_: RGBColor = RGBColor(22, 163, 74);
const PURPLE: RGBColor = RGBColor(124, 58, 237);
const GREY: RGBColor = RGBColor(100, 116, 139);
const INK: RGBColor = RGBColor(30, 41, 59);

pub async fn timelines(
    ctx: &SessionContext,
    collected: &Collected,
    moments: &[Moment],
    draw: bool,
) -> Result<Vec<Timeline>, Error> {
    let mut out = Vec::new();
    for host in collected.nodes() {
        let Some((mut start, mut end)) = collected.window_of(&host) else {
            continue;
        };
        let mut widened = String::new();
        // A finding's moment shortly before or after the window (a stuck
        // process started, the log lines that led to the collection)
        // widens it, so the marks of what led there are drawn too.
        for m in moments {
            // A second's margin: a syslog line of the same second has no
            // fraction.
            if m.ns < start && start - m.ns <= MAX_WIDEN_NS {
                start = m.ns - 1_000_000_000;
                widened = "the collection window, widened to the findings' moments".into();
            }
            if m.ns > end && m.ns - end <= MAX_WIDEN_NS {
                end = m.ns + 1_000_000_000;
                widened = "the collection window, widened to the findings' moments".into();
            }
        }
        // Nothing timed in the window (no capture, no eBPF): the chart
        // goes back to the log lines of the minutes before it, what led
        // someone to collect.
        let node = format!("coalesce(host, '') = {}", lit(&host));
        let captured = collected
            .captures
            .iter()
            .any(|c| c.host == host && c.last_ns >= start && c.first_ns <= end);
        let timed = grid(
            ctx,
            &format!(
                "SELECT (SELECT count(*) FROM events WHERE {node} AND cast(ts AS BIGINT) BETWEEN {start} AND {end}),
                        (SELECT cast(min(ts) AS BIGINT) FROM logs WHERE {node}
                           AND cast(ts AS BIGINT) BETWEEN {} AND {start})",
                start - MAX_WIDEN_NS
            ),
        )
        .await?;
        if let Some(r) = timed.rows.first()
            && !captured
            && int(&r[0]) == 0
            && !r[1].is_empty()
        {
            start = start.min(int(&r[1]) - 1_000_000_000);
            widened = "nothing timed in the collection window: from the log lines before it".into();
        }
        let mut t = one(ctx, &host, start, end, moments, draw).await?;
        t.widened = widened;
        out.push(t);
    }
    Ok(out)
}

/// Counts per (key, bucket) of a query returning key, bucket, count.
async fn counts(
    ctx: &SessionContext,
    sql: &str,
) -> Result<BTreeMap<String, BTreeMap<i64, i64>>, Error> {
    let g = grid(ctx, sql).await?;
    let mut out: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    for r in &g.rows {
        *out.entry(r[0].clone())
            .or_default()
            .entry(int(&r[1]))
            .or_default() += int(&r[2]);
    }
    Ok(out)
}

async fn one(
    ctx: &SessionContext,
    host: &str,
    start: i64,
    end: i64,
    moments: &[Moment],
    draw: bool,
) -> Result<Timeline, Error> {
    let span_ms = ((end - start) / 1_000_000).max(1);
    let bucket_ms = BUCKETS_MS
        .iter()
        .copied()
        .find(|b| span_ms / b <= MAX_BUCKETS)
        .unwrap_or(3_600_000);
    let b = bucket_ms * 1_000_000;
    // Buckets on whole multiples of their width, so times read round.
    let start = start - start.rem_euclid(b);
    let node = format!("coalesce(host, '') = {}", lit(host));
    let bin = |col: &str| format!("(cast({col} AS BIGINT) - {start}) / {b}");
    let in_window = |col: &str| {
        format!("{col} IS NOT NULL AND cast({col} AS BIGINT) BETWEEN {start} AND {end}")
    };
    // Packets and RSTs in one pass over the captures.
    let per_bin = grid(
        ctx,
        &format!(
            "SELECT capture, {}, count(*), sum(CASE WHEN rst THEN 1 ELSE 0 END)
             FROM packets WHERE {node} AND {} GROUP BY 1, 2",
            bin("ts"),
            in_window("ts")
        ),
    )
    .await?;
    let mut packets: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    let mut rsts: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    for r in &per_bin.rows {
        packets
            .entry(r[0].clone())
            .or_default()
            .insert(int(&r[1]), int(&r[2]));
        if int(&r[3]) > 0 {
            rsts.entry(r[0].clone())
                .or_default()
                .insert(int(&r[1]), int(&r[3]));
        }
    }
    // A retransmit: a segment carrying data (or SYN/FIN) whose sequence
    // number the same interface already saw on the same 5-tuple.
    let retrans = counts(
        ctx,
        &format!(
            "SELECT capture, bin, count(*) FROM (
                SELECT capture, {} AS bin,
                       row_number() OVER (PARTITION BY bundle, capture, ifname, src_ip, src_port, dst_ip, dst_port, seq,
                                          syn, fin ORDER BY ts) AS n
                FROM packets WHERE {node} AND proto = 'tcp' AND (payload_bytes > 0 OR syn OR fin) AND {})
             WHERE n > 1 GROUP BY 1, 2",
            bin("ts"),
            in_window("ts")
        ),
    )
    .await?;
    let connects = counts(
        ctx,
        &format!(
            "SELECT capture, {}, count(*) FROM {FLOWS} WHERE {node} AND proto = 'tcp' AND history LIKE 'S%' AND {} GROUP BY 1, 2",
            bin("first_ts"),
            in_window("first_ts")
        ),
    )
    .await?;
    let failed = counts(
        ctx,
        &format!(
            "SELECT capture, {}, count(*) FROM {FLOWS} WHERE {node} AND proto = 'tcp'
               AND conn_state IN ('S0', 'REJ', 'RSTOS0', 'RSTRH', 'SH') AND {} GROUP BY 1, 2",
            bin("last_ts"),
            in_window("last_ts")
        ),
    )
    .await?;
    let events = counts(
        ctx,
        &format!(
            "SELECT concat('eBPF ', CASE WHEN event = 'tcp_state' AND old_state = 'SYN_SENT' AND new_state = 'CLOSE'
                                     THEN 'connect failed' ELSE replace(event, '_', ' ') END),
                    {}, count(*) FROM events WHERE {node} AND {} GROUP BY 1, 2",
            bin("ts"),
            in_window("ts")
        ),
    )
    .await?;
    // Log lines: their own time, or a syslog time without a year (read in
    // the window's year, as UTC like the logs table reads `dmesg -T`).
    let log_lines = grid(
        ctx,
        &format!(
            "SELECT CASE WHEN level IN ('emerg', 'alert', 'crit', 'err') THEN 'log errors'
                         WHEN level = 'warning' THEN 'log warnings' ELSE 'log lines' END,
                    cast(ts AS BIGINT), time_text
             FROM logs WHERE {node} AND (ts IS NOT NULL OR time_text IS NOT NULL)"
        ),
    )
    .await?;
    let mut logs: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    for r in &log_lines.rows {
        let t = if r[1].is_empty() {
            syslog_ns(&r[2], start)
        } else {
            Some(int(&r[1]))
        };
        if let Some(t) = t.filter(|t| (start..=end).contains(t)) {
            *logs
                .entry(r[0].clone())
                .or_default()
                .entry((t - start) / b)
                .or_default() += 1;
        }
    }
    let mut points: Vec<Point> = Vec::new();
    for (capture, per) in &packets {
        let lane = |name: &str, m: &BTreeMap<String, BTreeMap<i64, i64>>, color| Lane {
            name: name.to_owned(),
            counts: m.get(capture).cloned().unwrap_or_default(),
            color,
        };
        points.push(Point {
            name: capture.clone(),
            packets: per.clone(),
            lanes: vec![
                lane("RSTs", &rsts, RED_),
                lane("retransmits", &retrans, ORANGE),
                lane("connects (SYN)", &connects, GREEN_),
                lane("failed connects", &failed, PURPLE),
            ],
        });
    }
    let mut node_lanes: Vec<Lane> = Vec::new();
    for (name, per) in events.into_iter().chain(logs) {
        let color = if name.contains("drop") || name.contains("failed") || name.contains("errors") {
            RED_
        } else if name.contains("retransmit") || name.contains("reset") || name.contains("warnings")
        {
            ORANGE
        } else {
            GREY
        };
        node_lanes.push(Lane {
            name,
            counts: per,
            color,
        });
    }
    let secs = bucket_ms as f64 / 1000.0;
    let mut lines = Vec::new();
    let when = |l: &Lane| {
        let n: i64 = l.counts.values().sum();
        let first = l.counts.keys().next().copied().unwrap_or(0);
        let last = l.counts.keys().next_back().copied().unwrap_or(0);
        if first == last {
            format!("{} {n} at {}", l.name, clock(start + first * b, 1))
        } else {
            format!(
                "{} {n} from {} to {}",
                l.name,
                clock(start + first * b, 1),
                clock(start + last * b, 1)
            )
        }
    };
    for p in &points {
        let total: i64 = p.packets.values().sum();
        let (peak_bin, peak) = p
            .packets
            .iter()
            .max_by_key(|(_, v)| **v)
            .map_or((0, 0), |(k, v)| (*k, *v));
        let mut parts = vec![format!(
            "{total} packets (peak {:.0}/s at {})",
            peak as f64 / secs,
            clock(start + peak_bin * b, 0)
        )];
        parts.extend(p.lanes.iter().filter(|l| !l.counts.is_empty()).map(when));
        lines.push(format!("capture point `{}`: {}", p.name, parts.join("; ")));
    }
    for l in &node_lanes {
        lines.push(when(l));
    }
    if points.is_empty() && node_lanes.is_empty() {
        lines.push("no packets, eBPF events or timed log lines in the window".into());
    }
    let mut svg = String::new();
    if draw && !(points.is_empty() && node_lanes.is_empty()) {
        let in_window: Vec<&Moment> = moments
            .iter()
            .filter(|m| m.ns >= start && m.ns <= end)
            .collect();
        svg = chart(&points, &node_lanes, start, end, bucket_ms, &in_window)
            .map_err(|e| Error::Render(format!("timeline chart: {e}")))?;
    }
    Ok(Timeline {
        host: host.to_owned(),
        window: super::sections::window_text(start, end),
        bucket: if bucket_ms >= 1000 {
            format!("{} s", bucket_ms / 1000)
        } else {
            format!("{bucket_ms} ms")
        },
        widened: String::new(),
        svg,
        lines,
    })
}

/// A syslog time without a year (`Nov 21 23:16:24[.123]`) in the year of
/// `near` (the year before when that would put it a day or more after).
fn syslog_ns(text: &str, near: i64) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut words = text.split_whitespace();
    let name = words.next()?;
    let month = MONTHS.iter().position(|m| *m == name)? + 1;
    let day: u32 = words.next()?.parse().ok()?;
    let time = words.next()?;
    let year: i64 = formats::bundle::rfc3339(u64::try_from(near).ok()?)
        .get(..4)?
        .parse()
        .ok()?;
    let at = |y: i64| super::sql::parse_ts(&format!("{y:04}-{month:02}-{day:02}T{time}Z"));
    let t = at(year)?;
    if t - near >= 86_400 * 1_000_000_000 {
        at(year - 1)
    } else {
        Some(t)
    }
}

const WIDTH: u32 = 1160;
const LABELS: u32 = 150;
const RATE_H: u32 = 90;
const LANE_H: u32 = 18;
const CAPTION_H: u32 = 22;
const AXIS_H: u32 = 34;

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn chart(
    points: &[Point],
    node_lanes: &[Lane],
    start: i64,
    end: i64,
    bucket_ms: i64,
    moments: &[&Moment],
) -> DrawResult<String> {
    let dur = (end - start) as f64 / 1e9;
    let secs = bucket_ms as f64 / 1000.0;
    // Panel heights: per capture point a rate panel and its lanes; the
    // node's lanes; the time axis.
    let mut heights: Vec<u32> = Vec::new();
    for p in points {
        heights.push(CAPTION_H + RATE_H);
        heights.push(LANE_H * p.lanes.len() as u32 + 6);
    }
    if !node_lanes.is_empty() {
        heights.push(CAPTION_H + LANE_H * node_lanes.len() as u32 + 6);
    }
    heights.push(AXIS_H);
    let total: u32 = heights.iter().sum::<u32>() + 10;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, total)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut y = 0i32;
        let mut areas: Vec<DrawingArea<SVGBackend, Shift>> = Vec::new();
        for h in &heights {
            let a = root.clone().shrink((0, y), (WIDTH, *h));
            areas.push(a);
            y += *h as i32;
        }
        let mut x_px: Option<(i32, i32)> = None;
        let mut k = 0;
        for p in points {
            let area = &areas[k];
            let ymax = p.packets.values().copied().max().unwrap_or(1).max(1) as f64 / secs * 1.15;
            let mut c = ChartBuilder::on(area)
                .margin_right(20)
                .margin_top(4)
                .caption(
                    format!("capture point {}", p.name),
                    ("sans-serif", 14)
                        .into_font()
                        .style(FontStyle::Bold)
                        .color(&INK),
                )
                .y_label_area_size(LABELS)
                .build_cartesian_2d(0f64..dur, 0f64..ymax)?;
            c.configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(3)
                .label_style(("sans-serif", 12).into_font().color(&INK))
                .axis_desc_style(("sans-serif", 12).into_font().color(&GREY))
                .y_desc("packets/s")
                .y_label_formatter(&|v| format!("{v:.0}"))
                .light_line_style(RGBColor(241, 245, 249))
                .axis_style(RGBColor(203, 213, 225))
                .draw()?;
            let pts: Vec<(f64, f64)> = (0..=((end - start) / (bucket_ms * 1_000_000)))
                .map(|i| {
                    (
                        (i as f64 + 0.5) * secs,
                        *p.packets.get(&i).unwrap_or(&0) as f64 / secs,
                    )
                })
                .collect();
            c.draw_series(
                AreaSeries::new(pts, 0.0, BLUE.mix(0.15)).border_style(BLUE.stroke_width(2)),
            )?;
            x_px = Some((
                c.backend_coord(&(0.0, 0.0)).0,
                c.backend_coord(&(dur, 0.0)).0,
            ));
            lanes_panel(&areas[k + 1], &p.lanes, dur, secs, None)?;
            k += 2;
        }
        if !node_lanes.is_empty() {
            lanes_panel(
                &areas[k],
                node_lanes,
                dur,
                secs,
                Some("node: eBPF events and log lines"),
            )?;
            k += 1;
        }
        // The time axis, alone at the bottom.
        let mut axis = ChartBuilder::on(&areas[k])
            .margin_right(20)
            .y_label_area_size(LABELS)
            .x_label_area_size(AXIS_H - 4)
            .build_cartesian_2d(0f64..dur, 0f64..1f64)?;
        axis.configure_mesh()
            .disable_mesh()
            .y_labels(0)
            .x_labels(10)
            .x_desc(format!("seconds since {} UTC", clock(start, 0)))
            .x_label_formatter(&|v| format!("{v:.1}"))
            .label_style(("sans-serif", 12).into_font().color(&INK))
            .axis_desc_style(("sans-serif", 12).into_font().color(&GREY))
            .axis_style(RGBColor(203, 213, 225))
            .draw()?;
        let (x0, x1) = x_px.unwrap_or((
            axis.backend_coord(&(0.0, 0.0)).0,
            axis.backend_coord(&(dur, 0.0)).0,
        ));
        // The findings' moments, across every panel.
        let bottom = y - AXIS_H as i32;
        let mut drawn: Vec<(i32, &str)> = Vec::new();
        for m in moments {
            let x = x0 + (((m.ns - start) as f64 / 1e9) / dur * f64::from(x1 - x0)).round() as i32;
            if drawn
                .iter()
                .any(|(px, l)| (px - x).abs() < 3 && *l == m.label)
            {
                continue;
            }
            drawn.push((x, &m.label));
            root.draw(&PathElement::new(
                vec![(x, CAPTION_H as i32), (x, bottom)],
                RED_.mix(0.55).stroke_width(2),
            ))?;
            root.draw(&Text::new(
                format!("finding {}", m.label),
                (x + 3, 4),
                ("sans-serif", 12).into_font().color(&RED_),
            ))?;
        }
        root.present()?;
    }
    Ok(buf)
}

/// Lanes of marks, one row each: a dot per bucket with events, its size
/// growing with the count.
fn lanes_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    lanes: &[Lane],
    dur: f64,
    secs: f64,
    caption: Option<&str>,
) -> DrawResult<()> {
    let n = lanes.len() as i32;
    let mut b = ChartBuilder::on(area);
    b.margin_right(20).y_label_area_size(LABELS);
    if let Some(c) = caption {
        b.caption(
            c,
            ("sans-serif", 14)
                .into_font()
                .style(FontStyle::Bold)
                .color(&INK),
        );
    }
    let names: Vec<String> = lanes
        .iter()
        .map(|l| {
            let total: i64 = l.counts.values().sum();
            format!("{} ({total})", l.name)
        })
        .collect();
    let mut c = b.build_cartesian_2d(0f64..dur, (0..n).into_segmented())?;
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) if *i >= 0 && *i < n => names[(n - 1 - *i) as usize].clone(),
        _ => String::new(),
    };
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(n as usize)
        .label_style(("sans-serif", 12).into_font().color(&INK))
        .y_label_formatter(&label)
        .light_line_style(RGBColor(241, 245, 249))
        .bold_line_style(RGBColor(226, 232, 240))
        .axis_style(RGBColor(203, 213, 225))
        .draw()?;
    for (i, l) in lanes.iter().enumerate() {
        let row = n - 1 - i as i32;
        let color = if l.counts.is_empty() { GREY } else { l.color };
        c.draw_series(l.counts.iter().map(|(bin, count)| {
            let r = (3.0 + 2.0 * (*count as f64).log2()).min(9.0) as i32;
            Circle::new(
                ((*bin as f64 + 0.5) * secs, SegmentValue::CenterOf(row)),
                r,
                color.mix(0.8).filled(),
            )
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_times_take_the_year_of_the_window() {
        let near = super::super::sql::parse_ts("2026-11-21T23:16:44Z").unwrap();
        assert_eq!(
            syslog_ns("Nov 21 23:16:24", near),
            super::super::sql::parse_ts("2026-11-21T23:16:24Z")
        );
        assert_eq!(
            syslog_ns("Dec 31 23:59:59", near),
            super::super::sql::parse_ts("2025-12-31T23:59:59Z")
        );
        assert_eq!(syslog_ns("1121 22:18:45.123456", near), None);
    }
}
