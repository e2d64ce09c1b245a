//! Ladder diagrams: the packets of one evidence flow as every capture
//! point saw them, side by side, one row per packet. A packet seen at one
//! point and not at another (an RST only the node saw) is a row with an
//! arrow in one column and "not seen" in the other.
//!
//! The flows come from the finding: every `address:port` pair its summary
//! and evidence name (`a -> b`, `a <-> b`, or address and port columns),
//! grouped by their port pair, so the flow inside a container and the
//! same flow behind NAT on the node (same ports, another address) are one
//! ladder.

use super::sections::Collected;
use super::sql::{Grid, clock, grid, int, lit};
use crate::error::Error;
use datafusion::prelude::SessionContext;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// One flow a finding names: every `address:port` end seen in it (the
/// container's, the NAT address on the node, the remote end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowKey {
    pub endpoints: BTreeSet<(String, u16)>,
}

/// One drawn ladder.
pub struct Ladder {
    pub title: String,
    pub svg: String,
    /// The SQL that lists its packets.
    pub query: String,
    /// The rows that matter, as a markdown table.
    pub markdown: String,
    /// Packets in it, and how many rows were left out of the drawing.
    pub packets: usize,
    pub elided: usize,
}

/// Columns holding an address and the port beside it.
const PAIRS: &[(&str, &str)] = &[
    ("saddr", "sport"),
    ("daddr", "dport"),
    ("src_ip", "src_port"),
    ("dst_ip", "dst_port"),
    ("local_address", "local_port"),
    ("remote_address", "remote_port"),
];

fn endpoint(token: &str) -> Option<(String, u16)> {
    let t = token.trim_matches(|c: char| "()[],;'\"".contains(c) && c != '[');
    let t = t.trim_end_matches([')', ',', ';', '\'', '"']);
    let a: SocketAddr = t.parse().ok()?;
    Some((a.ip().to_string(), a.port()))
}

/// Address pairs written `a -> b` or `a <-> b` in `text`.
fn pairs_in_text(text: &str, out: &mut Vec<[(String, u16); 2]>) {
    let words: Vec<&str> = text.split_whitespace().collect();
    for w in words.windows(3) {
        if (w[1] == "->" || w[1] == "<->" || w[1] == "→")
            && let (Some(a), Some(b)) = (endpoint(w[0]), endpoint(w[2]))
        {
            out.push([a, b]);
        }
    }
}

/// The flows a finding names, by port pair.
pub fn evidence_flows(summary: &str, evidence: &Grid) -> Vec<FlowKey> {
    let mut pairs = Vec::new();
    pairs_in_text(summary, &mut pairs);
    for row in &evidence.rows {
        for c in row {
            pairs_in_text(c, &mut pairs);
        }
        let ends: Vec<(String, u16)> = PAIRS
            .iter()
            .filter_map(|(a, p)| {
                let a = evidence.col(a).map(|i| row[i].clone())?;
                let p: u16 = evidence.col(p).and_then(|i| row[i].parse().ok())?;
                (!a.is_empty() && p != 0).then_some((a, p))
            })
            .collect();
        if let [a, b] = ends.as_slice() {
            pairs.push([a.clone(), b.clone()]);
        }
    }
    // Pairs sharing an end are one flow (the container's view and the
    // node's NAT view share the remote end; a redirected connect shares
    // its local end).
    let mut flows: Vec<FlowKey> = Vec::new();
    for [a, b] in pairs {
        if a.1 == 0 || b.1 == 0 || a == b {
            continue;
        }
        let mut merged = FlowKey {
            endpoints: [a, b].into_iter().collect(),
        };
        flows.retain(|f| {
            if f.endpoints.is_disjoint(&merged.endpoints) {
                true
            } else {
                merged.endpoints.extend(f.endpoints.iter().cloned());
                false
            }
        });
        flows.push(merged);
    }
    flows
}

/// A packet of a ladder.
#[derive(Debug, Clone)]
struct Pkt {
    view: usize,
    ts: i64,
    frame: String,
    /// Sent from the left end to the right one.
    rightward: bool,
    /// The end that is not the anchor's side.
    other: (String, u16),
    flags: u16,
    seq: u32,
    ack: u32,
    len: u32,
    ip_id: String,
}

/// One capture point and interface: a column of the ladder.
#[derive(Debug, Clone)]
struct View {
    capture: String,
    ifname: String,
    /// The ends seen on the left and on the right here.
    left: BTreeSet<(String, u16)>,
    right: BTreeSet<(String, u16)>,
    first_ns: i64,
    last_ns: i64,
}

/// One row: a packet and where it was seen.
#[derive(Debug, Clone)]
struct Row {
    ts: i64,
    /// From left to right.
    outbound: bool,
    cells: Vec<Option<Pkt>>,
}

/// What makes a packet the same at two capture points: direction,
/// sequence and acknowledgement numbers, flags, length, IP id (NAT changes
/// addresses and ports, not these).
type PacketKey = (bool, u32, u32, u16, u32, String);

/// Most packets read for one ladder.
const MAX_PACKETS: usize = 20_000;
/// Most rows drawn; the rest are folded into "… n packets …" rows.
const MAX_ROWS: usize = 60;
/// Rows of context kept around a row that matters.
const CONTEXT: usize = 2;

/// The SQL listing the packets of `flow` at every capture point.
pub fn packets_sql(flow: &FlowKey) -> String {
    let ends = flow
        .endpoints
        .iter()
        .map(|(a, p)| lit(&format!("{a}:{p}")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "select capture, ifname, frame, ts, src_ip, src_port, dst_ip, dst_port, tcp_flags, seq, ack_seq, payload_bytes, ip_id \
         from packets where proto = 'tcp' and concat(src_ip, ':', src_port) in ({ends}) \
         and concat(dst_ip, ':', dst_port) in ({ends}) order by ts, capture, frame"
    )
}

/// The ladders of `flows` (those with TCP packets in the inputs).
pub async fn ladders(
    ctx: &SessionContext,
    flows: &[FlowKey],
    collected: &Collected,
    draw: bool,
) -> Result<Vec<Ladder>, Error> {
    // When each capture point was capturing, as far as its packets tell
    // (capture points start one after the other): a point is not said to
    // have missed a packet sent before its first packet or after its last.
    let windows: BTreeMap<String, (i64, i64)> = collected
        .captures
        .iter()
        .map(|c| (c.capture.clone(), (c.first_ns, c.last_ns)))
        .collect();
    let mut out = Vec::new();
    for flow in flows.iter().take(3) {
        let query = packets_sql(flow);
        let g = grid(ctx, &format!("{query} limit {MAX_PACKETS}")).await?;
        if g.rows.is_empty() {
            continue;
        }
        out.push(build(flow, &g, &windows, query, draw)?);
    }
    Ok(out)
}

fn flag_text(f: u16) -> String {
    let mut s = String::new();
    for (bit, c) in [(2, 'S'), (1, 'F'), (4, 'R'), (8, 'P'), (16, '.')] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() { "none".into() } else { s }
}

fn build(
    flow: &FlowKey,
    g: &Grid,
    windows: &BTreeMap<String, (i64, i64)>,
    query: String,
    draw: bool,
) -> Result<Ladder, Error> {
    let col = |n: &str| g.col(n).unwrap_or(0);
    let (c_cap, c_if, c_frame, c_ts) = (col("capture"), col("ifname"), col("frame"), col("ts"));
    let (c_sip, c_sp, c_dip, c_dp) = (
        col("src_ip"),
        col("src_port"),
        col("dst_ip"),
        col("dst_port"),
    );
    let (c_fl, c_seq, c_ack, c_len, c_id) = (
        col("tcp_flags"),
        col("seq"),
        col("ack_seq"),
        col("payload_bytes"),
        col("ip_id"),
    );
    // The anchor is the end in most packets (the client socket, or the
    // server behind NAT); it is drawn on the right when it is the
    // server's (the port the first SYN went to, else the lower port).
    let ends = |r: &Vec<String>| {
        (
            (r[c_sip].clone(), int(&r[c_sp]) as u16),
            (r[c_dip].clone(), int(&r[c_dp]) as u16),
        )
    };
    let mut freq: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for r in &g.rows {
        let (s, d) = ends(r);
        *freq.entry(s).or_default() += 1;
        *freq.entry(d).or_default() += 1;
    }
    let anchor = freq
        .iter()
        .max_by_key(|(e, n)| (**n, std::cmp::Reverse((*e).clone())))
        .map(|(e, _)| e.clone())
        .unwrap_or_default();
    let server_port = g
        .rows
        .iter()
        .find(|r| int(&r[c_fl]) & 0x12 == 0x02)
        .map(|r| int(&r[c_dp]) as u16);
    let anchor_right = match server_port {
        Some(p) => anchor.1 == p,
        None => flow.endpoints.iter().all(|e| e.1 >= anchor.1),
    };
    let mut views: Vec<View> = Vec::new();
    let mut pkts = Vec::new();
    for r in &g.rows {
        let (src, dst) = ends(r);
        // near: the anchor's side of this packet (the anchor itself, or
        // the end with its port behind NAT).
        let src_near = src == anchor || (dst != anchor && src.1 == anchor.1);
        let (near, far) = if src_near {
            (src.clone(), dst.clone())
        } else {
            (dst.clone(), src.clone())
        };
        let (left, right) = if anchor_right {
            (far, near)
        } else {
            (near, far)
        };
        let rightward = if anchor_right { !src_near } else { src_near };
        let ts = super::sql::parse_ts(&r[c_ts]).unwrap_or(0);
        let v = match views
            .iter()
            .position(|v| v.capture == r[c_cap] && v.ifname == r[c_if])
        {
            Some(v) => v,
            None => {
                let (first_ns, last_ns) = windows.get(&r[c_cap]).copied().unwrap_or((ts, ts));
                views.push(View {
                    capture: r[c_cap].clone(),
                    ifname: r[c_if].clone(),
                    left: BTreeSet::new(),
                    right: BTreeSet::new(),
                    first_ns,
                    last_ns,
                });
                views.len() - 1
            }
        };
        views[v].left.insert(left.clone());
        views[v].right.insert(right.clone());
        pkts.push(Pkt {
            view: v,
            ts,
            frame: r[c_frame].clone(),
            rightward,
            other: if anchor_right { left } else { right },
            flags: int(&r[c_fl]) as u16,
            seq: int(&r[c_seq]) as u32,
            ack: int(&r[c_ack]) as u32,
            len: int(&r[c_len]) as u32,
            ip_id: r[c_id].clone(),
        });
    }
    // Column order: capture points inside a namespace of their own first,
    // then the node's; within a point, the interface nearest the inner end.
    let node_side =
        |c: &str| c == "host" || c == "node" || c.starts_with("host") || c.starts_with("node");
    let inner = views.iter().find(|v| !node_side(&v.capture)).map(|v| {
        if anchor_right {
            v.left.clone()
        } else {
            v.right.clone()
        }
    });
    let mut order: Vec<usize> = (0..views.len()).collect();
    order.sort_by_key(|&i| {
        let v = &views[i];
        let side = if anchor_right { &v.left } else { &v.right };
        (
            node_side(&v.capture),
            inner.as_ref().is_some_and(|s| s.is_disjoint(side)),
            v.capture.clone(),
            v.ifname.clone(),
        )
    });
    let rank: Vec<usize> = {
        let mut r = vec![0; views.len()];
        for (pos, &i) in order.iter().enumerate() {
            r[i] = pos;
        }
        r
    };
    let views: Vec<View> = order.iter().map(|&i| views[i].clone()).collect();
    for p in &mut pkts {
        p.view = rank[p.view];
    }
    // Rows: the same packet at several points (same direction, sequence
    // and acknowledgement numbers, flags, length and IP id) is one row.
    let mut rows: Vec<Row> = Vec::new();
    let mut open: BTreeMap<PacketKey, Vec<usize>> = BTreeMap::new();
    for p in pkts {
        let outbound = p.rightward;
        let key = (outbound, p.seq, p.ack, p.flags, p.len, p.ip_id.clone());
        let slot = open.entry(key).or_default();
        let found = slot.iter().copied().find(|&r| {
            rows[r].cells[p.view].is_none() && (p.ts - rows[r].ts).abs() < 1_000_000_000
        });
        match found {
            Some(r) => {
                let view = p.view;
                rows[r].cells[view] = Some(p);
            }
            None => {
                let mut cells = vec![None; views.len()];
                let ts = p.ts;
                let view = p.view;
                cells[view] = Some(p);
                rows.push(Row {
                    ts,
                    outbound,
                    cells,
                });
                slot.push(rows.len() - 1);
            }
        }
    }
    rows.sort_by_key(|r| r.ts);
    let packets = rows.iter().map(|r| r.cells.iter().flatten().count()).sum();
    let (views, rows) = merge_alike(views, rows);
    // Rows that matter: handshake, FIN and RST, and any packet a capture
    // point missed while it was capturing.
    let missed = |r: &Row| {
        views.iter().enumerate().any(|(i, v)| {
            r.cells[i].is_none() && r.ts >= v.first_ns && r.ts <= v.last_ns && views.len() > 1
        })
    };
    let flags_of = |r: &Row| {
        r.cells
            .iter()
            .flatten()
            .map(|p| p.flags)
            .fold(0, |a, b| a | b)
    };
    let matters: Vec<bool> = rows
        .iter()
        .map(|r| flags_of(r) & 0x07 != 0 || missed(r))
        .collect();
    let n = rows.len();
    let mut keep: Vec<bool> = (0..n).map(|i| i < 3 || i + 3 >= n).collect();
    // The latest rows that matter are kept first (an RST ends a flow).
    let mut budget = MAX_ROWS;
    for i in (0..n).rev() {
        if matters[i] && budget > 0 {
            let around = i.saturating_sub(CONTEXT)..(i + CONTEXT + 1).min(n);
            for k in keep[around].iter_mut().filter(|k| !**k) {
                *k = true;
                budget = budget.saturating_sub(1);
            }
        }
    }
    if rows.len() <= MAX_ROWS {
        keep.iter_mut().for_each(|k| *k = true);
    }
    let elided = keep.iter().filter(|k| !**k).count();
    let title = {
        let others: Vec<String> = flow
            .endpoints
            .iter()
            .filter(|e| **e != anchor)
            .map(end_text)
            .collect();
        format!("{} ↔ {}", end_text(&anchor), others.join(", "))
    };
    // Relative sequence numbers per direction, from the first packet seen.
    let mut base: [Option<u32>; 2] = [None, None];
    for r in &rows {
        if let Some(p) = r.cells.iter().flatten().next() {
            let d = usize::from(r.outbound);
            base[d].get_or_insert(p.seq);
        }
    }
    let label = |r: &Row, p: &Pkt| {
        // Relative to the first packet that way; a number far outside
        // that sequence space (an RST of another connection's) stays as is.
        let rel = p
            .seq
            .wrapping_sub(base[usize::from(r.outbound)].unwrap_or(p.seq));
        let seq = if rel < 1 << 30 { rel } else { p.seq };
        let mut s = format!("[{}] seq {seq}", flag_text(p.flags));
        if p.len > 0 {
            s.push_str(&format!(" len {}", p.len));
        }
        s.push_str(&format!(" #{}", p.frame));
        let v = &views[p.view];
        if v.left.len() > 1 || v.right.len() > 1 {
            s.push_str(&format!(" ({})", end_text(&p.other)));
        }
        s
    };
    let markdown = md(&views, &rows, &keep, &matters, &label);
    let svg = if draw {
        svg(&views, &rows, &keep, &label).map_err(|e| Error::Render(format!("ladder: {e}")))?
    } else {
        String::new()
    };
    Ok(Ladder {
        title,
        svg,
        query,
        markdown,
        packets,
        elided,
    })
}

/// Interfaces of one capture point that saw exactly the same packets (a
/// bridge and its port, say) become one column, named after all of them.
fn merge_alike(views: Vec<View>, rows: Vec<Row>) -> (Vec<View>, Vec<Row>) {
    let seen = |v: usize| -> Vec<bool> { rows.iter().map(|r| r.cells[v].is_some()).collect() };
    let mut into: Vec<usize> = (0..views.len()).collect();
    for j in 0..views.len() {
        for i in 0..j {
            if into[i] == i
                && views[i].capture == views[j].capture
                && views[i].left == views[j].left
                && views[i].right == views[j].right
                && seen(i) == seen(j)
            {
                into[j] = i;
                break;
            }
        }
    }
    let kept: Vec<usize> = (0..views.len()).filter(|&v| into[v] == v).collect();
    let merged_views = kept
        .iter()
        .map(|&i| {
            let mut v = views[i].clone();
            let names: Vec<&str> = (0..views.len())
                .filter(|&j| into[j] == i)
                .map(|j| views[j].ifname.as_str())
                .collect();
            v.ifname = names.join(", ");
            v
        })
        .collect();
    let merged_rows = rows
        .into_iter()
        .map(|mut r| {
            r.cells = kept
                .iter()
                .enumerate()
                .map(|(n, &i)| {
                    r.cells[i].take().map(|mut p| {
                        p.view = n;
                        p
                    })
                })
                .collect();
            r
        })
        .collect();
    (merged_views, merged_rows)
}

fn view_title(v: &View) -> String {
    format!("{} · {}", v.capture, v.ifname)
}

fn ends_text(ends: &BTreeSet<(String, u16)>) -> String {
    ends.iter().map(end_text).collect::<Vec<_>>().join(" / ")
}

fn end_text(e: &(String, u16)) -> String {
    if e.0.contains(':') {
        format!("[{}]:{}", e.0, e.1)
    } else {
        format!("{}:{}", e.0, e.1)
    }
}

/// The rows that matter as a markdown table (at most 12).
fn md(
    views: &[View],
    rows: &[Row],
    keep: &[bool],
    matters: &[bool],
    label: &dyn Fn(&Row, &Pkt) -> String,
) -> String {
    let mut out = format!(
        "| time | {} |\n|---|{}\n",
        views
            .iter()
            .map(|v| format!(
                "{} ({} ↔ {})",
                view_title(v),
                ends_text(&v.left),
                ends_text(&v.right)
            ))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(views.len())
    );
    let picked: Vec<usize> = (0..rows.len()).filter(|&i| keep[i] && matters[i]).collect();
    let picked: Vec<usize> = if picked.len() > 12 {
        picked[..4]
            .iter()
            .chain(&picked[picked.len() - 8..])
            .copied()
            .collect()
    } else {
        picked
    };
    for i in picked {
        let r = &rows[i];
        let cells: Vec<String> = r
            .cells
            .iter()
            .enumerate()
            .map(|(v, c)| match c {
                Some(p) => format!("{} {}", if r.outbound { "→" } else { "←" }, label(r, p)),
                None if r.ts >= views[v].first_ns && r.ts <= views[v].last_ns => {
                    "**not seen**".into()
                }
                None => "(not capturing)".into(),
            })
            .collect();
        out.push_str(&format!("| {} | {} |\n", clock(r.ts, 6), cells.join(" | ")));
    }
    out.trim_end().to_owned()
}

const COL_W: i32 = 280;
const TIME_W: i32 = 120;
const HEAD_H: i32 = 58;
const ROW_H: i32 = 19;
const RED_: RGBColor = RGBColor(220, 38, 38);
const BLUE: RGBColor = RGBColor(37, 99, 235);
const INK: RGBColor = RGBColor(30, 41, 59);
const MUTED: RGBColor = RGBColor(100, 116, 139);
const LINE: RGBColor = RGBColor(203, 213, 225);

fn svg(
    views: &[View],
    rows: &[Row],
    keep: &[bool],
    label: &dyn Fn(&Row, &Pkt) -> String,
) -> Result<String, Box<dyn std::error::Error>> {
    // Drawn rows: kept rows, and one row per run of rows left out.
    enum Line<'a> {
        Packet(&'a Row),
        Gap(usize),
    }
    let mut lines: Vec<Line> = Vec::new();
    let mut gap = 0;
    for (r, k) in rows.iter().zip(keep) {
        if *k {
            if gap > 0 {
                lines.push(Line::Gap(gap));
                gap = 0;
            }
            lines.push(Line::Packet(r));
        } else {
            gap += 1;
        }
    }
    if gap > 0 {
        lines.push(Line::Gap(gap));
    }
    let w = TIME_W + COL_W * views.len() as i32 + 10;
    let h = HEAD_H + ROW_H * lines.len() as i32 + 12;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let font = |size: i32, color: &RGBColor, h: HPos| {
            ("sans-serif", size)
                .into_font()
                .color(color)
                .pos(Pos::new(h, VPos::Center))
        };
        let x_of = |v: usize| {
            (
                TIME_W + COL_W * v as i32 + 40,
                TIME_W + COL_W * (v as i32 + 1) - 40,
            )
        };
        root.draw(&Text::new(
            "time (UTC)",
            (8, HEAD_H - 14),
            font(11, &MUTED, HPos::Left),
        ))?;
        for (i, v) in views.iter().enumerate() {
            let (x0, x1) = x_of(i);
            let mid = (x0 + x1) / 2;
            let bold = ("sans-serif", 13)
                .into_font()
                .style(FontStyle::Bold)
                .color(&INK)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(view_title(v), (mid, 12), bold))?;
            root.draw(&Text::new(
                ends_text(&v.left),
                (x0, 32),
                font(11, &INK, HPos::Center),
            ))?;
            root.draw(&Text::new(
                ends_text(&v.right),
                (x1, 32),
                font(11, &INK, HPos::Center),
            ))?;
            for x in [x0, x1] {
                root.draw(&PathElement::new(
                    vec![(x, HEAD_H - 16), (x, h - 6)],
                    LINE.stroke_width(2),
                ))?;
            }
        }
        for (n, line) in lines.iter().enumerate() {
            let y = HEAD_H + ROW_H * n as i32 + ROW_H / 2;
            match line {
                Line::Gap(k) => {
                    root.draw(&Text::new(
                        format!("⋯ {k} packets seen at every point ⋯"),
                        (w / 2, y),
                        font(11, &MUTED, HPos::Center),
                    ))?;
                }
                Line::Packet(r) => {
                    let flags = r.cells.iter().flatten().fold(0, |a, p| a | p.flags);
                    let color = if flags & 4 != 0 {
                        RED_
                    } else if flags & 3 != 0 {
                        BLUE
                    } else {
                        INK
                    };
                    let t = clock(r.ts, 6);
                    root.draw(&Text::new(t, (8, y), font(11, &MUTED, HPos::Left)))?;
                    for (i, cell) in r.cells.iter().enumerate() {
                        let (x0, x1) = x_of(i);
                        let v = &views[i];
                        match cell {
                            Some(p) => {
                                let (from, to) = if r.outbound { (x0, x1) } else { (x1, x0) };
                                let tip = if r.outbound { -7 } else { 7 };
                                let stroke = if flags & 4 != 0 { 2 } else { 1 };
                                root.draw(&PathElement::new(
                                    vec![(from, y + 4), (to, y + 4)],
                                    color.stroke_width(stroke),
                                ))?;
                                root.draw(&Polygon::new(
                                    vec![(to, y + 4), (to + tip, y), (to + tip, y + 8)],
                                    color.filled(),
                                ))?;
                                root.draw(&Text::new(
                                    label(r, p),
                                    ((x0 + x1) / 2, y - 3),
                                    font(10, &color, HPos::Center),
                                ))?;
                            }
                            None => {
                                let capturing = r.ts >= v.first_ns && r.ts <= v.last_ns;
                                let (text, c) = match (capturing, flags & 4 != 0) {
                                    (true, true) => ("✕ not seen here", RED_),
                                    (true, false) => ("✕ not seen here", MUTED),
                                    (false, _) => ("(not capturing)", MUTED),
                                };
                                if flags & 4 != 0 && capturing {
                                    root.draw(&Rectangle::new(
                                        [(x0 + 40, y - 7), (x1 - 40, y + 8)],
                                        RED_.mix(0.08).filled(),
                                    ))?;
                                }
                                root.draw(&Text::new(
                                    text,
                                    ((x0 + x1) / 2, y + 1),
                                    font(11, &c, HPos::Center),
                                ))?;
                            }
                        }
                    }
                }
            }
        }
        root.present()?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_come_from_text_and_address_columns() {
        let g = Grid {
            columns: vec![
                "packet".into(),
                "saddr".into(),
                "sport".into(),
                "daddr".into(),
                "dport".into(),
            ],
            rows: vec![vec![
                "10.99.52.2:443 -> 10.99.52.1:40100".into(),
                "10.244.3.7".into(),
                "44410".into(),
                "192.168.77.2".into(),
                "7777".into(),
            ]],
        };
        let flows = evidence_flows(
            "RST of 10.99.52.1:40100 <-> 10.99.52.2:443 (container flow 172.17.0.2:40100 -> 10.99.52.2:443 by conntrack)",
            &g,
        );
        assert_eq!(flows.len(), 2, "{flows:?}");
        let ends: Vec<String> = flows[0].endpoints.iter().map(end_text).collect();
        assert_eq!(
            ends,
            ["10.99.52.1:40100", "10.99.52.2:443", "172.17.0.2:40100"]
        );
        let ends: Vec<String> = flows[1].endpoints.iter().map(end_text).collect();
        assert_eq!(ends, ["10.244.3.7:44410", "192.168.77.2:7777"]);
        assert_eq!(endpoint("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(endpoint("(1.2.3.4:5)"), Some(("1.2.3.4".into(), 5)));
    }
}
