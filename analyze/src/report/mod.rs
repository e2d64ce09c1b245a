//! `capsnap report`: one page for the people who read the ticket.
//!
//! The page is built from SQL over the workspace's tables, so it works for
//! any input `detect` accepts (a bundle, captures alone, a glob of
//! bundles), and shows what the inputs hold and says what they lack:
//! - [`sections`]: what was collected (the `collection` table, else the
//!   captures' own extent), the namespaces (`netns`, `interfaces`,
//!   `addresses`, `sockets`, `sockstat`, `flows`, `processes`) and the
//!   counters (`net_counters`, `interfaces`);
//! - the findings of the detections ([`crate::detect`]), worst first, each
//!   with the commands that reproduce its evidence;
//! - [`timeline`]: packets, RSTs, retransmits, connects and failures per
//!   capture point over the window, eBPF events and log lines as marks,
//!   the findings' moments highlighted (an SVG chart drawn by `plotters`);
//! - [`ladder`]: each evidence flow's packets as every capture point saw
//!   them, side by side, so a packet seen at one point and not the other
//!   stands out (SVG, `plotters` again).
//!
//! The page itself comes from `askama` templates (`analyze/templates/`),
//! HTML (escaped by the template engine; one self-contained file: styles
//! inline, charts as inline SVG, no script needed to read it) or markdown
//! for pasting into a ticket.

mod ladder;
mod sections;
mod sql;
mod timeline;

use crate::Workspace;
use crate::detect::{Outcome, Severity};
use crate::error::Error;
use askama::Template;

/// What `capsnap report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML page (opens offline, in a browser or a mail).
    #[default]
    Html,
    /// Markdown for pasting into a ticket.
    Markdown,
}

/// Evidence rows shown per finding in the HTML page (markdown shows fewer).
const EVIDENCE_ROWS: usize = 50;
/// Evidence rows shown per finding in markdown.
const MD_EVIDENCE_ROWS: usize = 8;

/// Everything the templates show.
struct Page {
    title: String,
    version: &'static str,
    /// The inputs as given on the command line (shell-quoted).
    inputs: String,
    headline: String,
    worst: &'static str,
    collected: sections::Collected,
    findings: Vec<FindingView>,
    cannot_tell: Vec<(String, String, String)>,
    clear: Vec<String>,
    timelines: Vec<timeline::Timeline>,
    namespaces: Vec<sections::Namespace>,
    counters: sections::Counters,
}

impl Page {
    /// Whether any finding has a ladder diagram.
    fn has_ladders(&self) -> bool {
        self.findings.iter().any(|f| !f.ladders.is_empty())
    }
}

/// One finding as the page shows it.
struct FindingView {
    anchor: String,
    id: String,
    title: String,
    severity: &'static str,
    summary: String,
    evidence: sql::Grid,
    /// Evidence rows not shown.
    more_rows: usize,
    /// Rows to mark (an RST, the packet that provoked it).
    marked: Vec<bool>,
    why: String,
    action: String,
    commands: Vec<String>,
    ladders: Vec<ladder::Ladder>,
}

impl FindingView {
    /// The evidence as a markdown table (at most [`MD_EVIDENCE_ROWS`] rows).
    fn md_evidence(&self) -> String {
        md_table(&self.evidence, MD_EVIDENCE_ROWS)
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct HtmlPage<'a> {
    page: &'a Page,
}

#[derive(Template)]
#[template(path = "report.md")]
struct MarkdownPage<'a> {
    page: &'a Page,
}

impl Workspace {
    /// The report over these inputs; `inputs` are the arguments that
    /// opened them, shown in the commands that reproduce the evidence.
    pub async fn report(&self, inputs: &[String], format: ReportFormat) -> Result<String, Error> {
        let page = sql::with_flows(&self.ctx, build(self, inputs, format)).await?;
        let text = match format {
            ReportFormat::Html => HtmlPage { page: &page }.render(),
            ReportFormat::Markdown => MarkdownPage { page: &page }.render(),
        };
        text.map_err(|e| Error::Render(e.to_string()))
    }
}

async fn build(ws: &Workspace, inputs: &[String], format: ReportFormat) -> Result<Page, Error> {
    let ctx = &ws.ctx;
    let shown_inputs = inputs
        .iter()
        .map(|i| shell_quote(i))
        .collect::<Vec<_>>()
        .join(" ");
    let collected = sections::collected(ctx).await?;
    let reports = ws.detect(&[]).await?;
    let mut findings = Vec::new();
    let mut cannot_tell = Vec::new();
    let mut clear = Vec::new();
    for r in &reports {
        let d = r.detection;
        match &r.outcome {
            Outcome::Clear => clear.push(d.id.clone()),
            Outcome::CannotTell(why) => {
                cannot_tell.push((d.id.clone(), d.title.clone(), why.join("; ")))
            }
            Outcome::Found(found) => {
                for f in found {
                    findings.push((d, f));
                }
            }
        }
    }
    // Worst first; detections are already sorted by severity, keep their order.
    findings.sort_by_key(|(d, _)| std::cmp::Reverse(d.severity));
    let worst = findings.first().map(|(d, _)| d.severity);
    let mut views = Vec::new();
    let mut moments = Vec::new();
    for (n, (d, f)) in findings.iter().enumerate() {
        let mut evidence = sql::Grid::of(std::slice::from_ref(&f.evidence))?;
        for row in &evidence.rows {
            for (c, name) in evidence.columns.iter().enumerate() {
                if (name == "ts" || name.ends_with("_ts"))
                    && let Some(ns) = sql::parse_ts(&row[c])
                {
                    moments.push(timeline::Moment {
                        ns,
                        label: format!("{}", n + 1),
                    });
                }
            }
        }
        tidy_evidence(&mut evidence, collected.bundles.len() > 1);
        let flows = ladder::evidence_flows(&f.summary, &evidence);
        let ladders =
            ladder::ladders(ctx, &flows, &collected, format == ReportFormat::Html).await?;
        let mut commands = vec![format!("capsnap detect {shown_inputs} --only {}", d.id)];
        for l in &ladders {
            commands.push(format!("capsnap query {shown_inputs} \"{}\"", l.query));
        }
        if ladders.is_empty() {
            commands.push(format!(
                "capsnap query {shown_inputs} \"select summary, evidence from findings where detection = '{}'\"",
                d.id
            ));
        }
        let marked = evidence
            .rows
            .iter()
            .map(|r| {
                let e = sql::cell(&evidence, r, "evidence");
                e == "rst" || e == "provoking packet"
            })
            .collect();
        let more_rows = evidence.rows.len().saturating_sub(EVIDENCE_ROWS);
        evidence.rows.truncate(EVIDENCE_ROWS);
        views.push(FindingView {
            anchor: format!("finding-{}", n + 1),
            id: d.id.clone(),
            title: d.title.clone(),
            severity: d.severity.name(),
            summary: f.summary.clone(),
            evidence,
            more_rows,
            marked,
            why: d.why.clone(),
            action: d.action.clone(),
            commands,
            ladders,
        });
    }
    let timelines =
        timeline::timelines(ctx, &collected, &moments, format == ReportFormat::Html).await?;
    let namespaces = sections::namespaces(ctx).await?;
    let counters = sections::counters(ctx).await?;
    let host = collected.hosts();
    let headline = match views.len() {
        0 if cannot_tell.is_empty() => {
            "Nothing found: every detection ran and found nothing.".to_owned()
        }
        0 => format!(
            "Nothing found, but {} detection(s) could not tell (inputs missing, see below).",
            cannot_tell.len()
        ),
        1 => format!("1 finding: {}", views[0].title),
        n => format!("{n} findings; the worst: {}", views[0].title),
    };
    Ok(Page {
        title: format!("capsnap report: {host}"),
        version: env!("CARGO_PKG_VERSION"),
        inputs: shown_inputs,
        headline,
        worst: worst.map_or("none", Severity::name),
        collected,
        findings: views,
        cannot_tell,
        clear,
        timelines,
        namespaces,
        counters,
    })
}

/// Evidence as a person reads it: columns with no value dropped, the
/// bundle column too when there is one bundle, times shortened to the
/// time of day (the date is in the page's header).
fn tidy_evidence(g: &mut sql::Grid, many_bundles: bool) {
    let keep: Vec<usize> = (0..g.columns.len())
        .filter(|&c| {
            g.rows.iter().any(|r| !r[c].is_empty()) && (many_bundles || g.columns[c] != "bundle")
        })
        .collect();
    g.columns = keep.iter().map(|&c| g.columns[c].clone()).collect();
    for r in &mut g.rows {
        *r = keep.iter().map(|&c| std::mem::take(&mut r[c])).collect();
        for cell in r.iter_mut() {
            if cell.len() >= 20
                && cell.ends_with('Z')
                && let Some(ns) = sql::parse_ts(cell)
            {
                *cell = sql::clock(ns, 6);
            }
        }
    }
}

/// `text` as one markdown table cell: `|` escaped, lines joined, cut to
/// 120 characters.
pub(crate) fn md_cell(text: impl AsRef<str>) -> String {
    let text = text.as_ref();
    let mut s = text.replace('|', "\\|").replace(['\n', '\r'], " ");
    if s.chars().count() > 120 {
        s = s.chars().take(117).collect::<String>() + "...";
    }
    s
}

/// A markdown table of the first `limit` rows (cells with `|` and line
/// breaks escaped, long cells cut).
fn md_table(g: &sql::Grid, limit: usize) -> String {
    let esc = |s: &str| md_cell(s);
    let mut out = String::new();
    out.push_str(&format!(
        "| {} |\n",
        g.columns
            .iter()
            .map(|c| esc(c))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    out.push_str(&format!("|{}\n", "---|".repeat(g.columns.len())));
    for r in g.rows.iter().take(limit) {
        out.push_str(&format!(
            "| {} |\n",
            r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    if g.rows.len() > limit {
        out.push_str(&format!(
            "\n({} more rows in the HTML report)\n",
            g.rows.len() - limit
        ));
    }
    out.trim_end().to_owned()
}

/// The `capsnap report` command for these inputs, which `detect` points to.
pub fn command_for(inputs: &[String]) -> String {
    let words: Vec<String> = inputs.iter().map(|i| shell_quote(i)).collect();
    format!("capsnap report {} -o report.html", words.join(" "))
}

/// `arg` as a POSIX shell word.
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(shell_quote("samples/x.capsnap"), "samples/x.capsnap");
        assert_eq!(shell_quote("bundles/*.capsnap"), "'bundles/*.capsnap'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn markdown_cells_escape_pipes() {
        let g = sql::Grid {
            columns: vec!["a".into()],
            rows: vec![vec!["x|y\nz".into()], vec!["2".into()]],
        };
        assert_eq!(
            md_table(&g, 1),
            "| a |\n|---|\n| x\\|y z |\n\n(1 more rows in the HTML report)"
        );
    }
}
