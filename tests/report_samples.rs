//! `capsnap report` on every kept sample, read back the way its readers
//! will: the HTML page through a real headless browser (Debian's
//! `chromium`), its DOM checked for the findings, the RST frames, the
//! namespaces and the charts, a screenshot checked for not being blank;
//! the file checked for referring to nothing outside itself; the markdown
//! form checked for fitting a ticket.
//!
//! What each page must show comes from the sample's detect snapshot
//! (`samples/<id>.expect.json`) and its `netns` table, so adding a sample
//! adds no test code. Without chromium the browser checks say SKIPPED
//! (`.ci/run` installs it); the others always run.

mod common;

use common::capsnap;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// The kept sample bundles, by id.
fn kept() -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(samples())
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".capsnap")?.to_owned())
        })
        .collect();
    ids.sort();
    assert!(ids.len() >= 6, "samples/ lost its bundles: {ids:?}");
    ids
}

/// Largest page a kept sample may give (they are 20-60 KB).
const MAX_HTML: u64 = 400 * 1024;
/// Longest markdown a kept sample may give: it is pasted into a ticket.
const MAX_MD_LINES: usize = 200;

/// The browser, if this machine has one.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAPSNAP_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()?;
            let path = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
        })
}

/// Runs headless chromium on `page` with `args`; its stdout. The flags
/// keep it off the network (there is none here, and it would stall).
fn headless(chrome: &Path, page: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium {args:?} on {}: {}\n{}",
        page.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every reference the page makes to something outside itself: in its
/// tags (text is escaped, so every `<` starts one) a `src`, `href` or
/// `action` that is not an in-page anchor, or any address but SVG's
/// namespace name; in its styles a `url(` or `@import`; and any `<link>`,
/// `<iframe>`, `<object>` or `<embed>`.
fn outside_references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or(tag);
        let name = tag.split_whitespace().next().unwrap_or("");
        if ["link", "iframe", "object", "embed"].contains(&name) {
            found.push(format!("<{tag}>"));
        }
        let tag = tag.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for attr in [
            " src=", " href=", ":href=", " action=", " srcset=", " poster=", " data=",
        ] {
            for (i, _) in tag.match_indices(attr) {
                let value = tag[i + attr.len()..].trim_start_matches(['"', '\'']);
                if !value.starts_with('#') {
                    found.push(format!("<{tag}>"));
                }
            }
        }
        if ["http:", "https:", "ftp:", "file:", "//", "url("]
            .iter()
            .any(|s| tag.contains(s))
        {
            found.push(format!("<{tag}>"));
        }
    }
    for style in lower.split("<style").skip(1) {
        let style = style.split("</style>").next().unwrap_or(style);
        for token in ["url(", "@import", "http:", "https:"] {
            if style.contains(token) {
                found.push(format!("style: {token}"));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The namespace labels of a bundle.
fn namespaces(bundle: &Path) -> Vec<String> {
    let out = capsnap(&[
        "query",
        bundle.to_str().unwrap(),
        "select netns from netns order by netns",
        "--format",
        "csv",
    ]);
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// The text between `<section id="ID"` and the next `</section>`.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = dom[start..]
        .find("</section>")
        .map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// The pixels of an 8-bit RGB or RGBA PNG (what chromium writes) as
/// (width, height, bytes per pixel, bytes).
fn decode_png(bytes: &[u8]) -> (usize, usize, usize, Vec<u8>) {
    use std::io::Read;
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut pos, mut idat) = (8, Vec::new());
    let (mut width, mut height, mut bpp) = (0, 0, 0);
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                bpp = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("PNG colour type {t}"),
                };
                assert_eq!(data[12], 0, "interlaced PNG");
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    // Undo the scanline filters (PNG spec, section 9).
    let stride = width * bpp;
    let mut out = vec![0u8; stride * height];
    for y in 0..height {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= bpp {
                out[y * stride + x - bpp] as i32
            } else {
                0
            };
            let b = if y > 0 {
                out[(y - 1) * stride + x] as i32
            } else {
                0
            };
            let c = if x >= bpp && y > 0 {
                out[(y - 1) * stride + x - bpp] as i32
            } else {
                0
            };
            let pred = match line[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            out[y * stride + x] = (line[1 + x] as i32 + pred) as u8;
        }
    }
    (width, height, bpp, out)
}

/// The share of pixels unlike the most common colour, and how many
/// colours there are.
fn ink(png_path: &Path) -> (f64, usize) {
    let (_, _, bpp, pixels) = decode_png(&std::fs::read(png_path).unwrap());
    let mut counts = std::collections::HashMap::new();
    for px in pixels.chunks(bpp) {
        *counts.entry([px[0], px[1], px[2]]).or_insert(0usize) += 1;
    }
    let total: usize = counts.values().sum();
    let most = counts.values().copied().max().unwrap_or(0);
    ((total - most) as f64 / total as f64, counts.len())
}

struct Rendered {
    id: String,
    bundle: PathBuf,
    html: PathBuf,
    markdown: String,
    expect: Vec<Value>,
}

fn render_all(dir: &Path) -> Vec<Rendered> {
    kept()
        .into_iter()
        .map(|id| {
            let bundle = samples().join(format!("{id}.capsnap"));
            let html = dir.join(format!("{id}.html"));
            let out = capsnap(&[
                "report",
                bundle.to_str().unwrap(),
                "-o",
                html.to_str().unwrap(),
            ]);
            assert!(
                out.status.success(),
                "{id}: report failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.is_empty(), "{id}: the page went to stdout too");
            let md = capsnap(&["report", bundle.to_str().unwrap(), "--format", "markdown"]);
            assert!(
                md.status.success(),
                "{id}: {}",
                String::from_utf8_lossy(&md.stderr)
            );
            let expect: Vec<Value> = serde_json::from_slice(
                &std::fs::read(samples().join(format!("{id}.expect.json"))).unwrap(),
            )
            .unwrap();
            Rendered {
                id,
                bundle,
                html,
                markdown: String::from_utf8(md.stdout).unwrap(),
                expect,
            }
        })
        .collect()
}

fn found(expect: &[Value]) -> Vec<&Value> {
    expect.iter().filter(|o| o["status"] == "found").collect()
}

#[test]
fn every_sample_page_is_self_contained_and_small() {
    let dir = tempfile::tempdir().unwrap();
    for r in render_all(dir.path()) {
        let html = std::fs::read_to_string(&r.html).unwrap();
        let size = std::fs::metadata(&r.html).unwrap().len();
        assert!(size < MAX_HTML, "{}: {size} bytes", r.id);
        assert!(html.starts_with("<!DOCTYPE html>"), "{}", r.id);
        let outside = outside_references(&html);
        assert!(
            outside.is_empty(),
            "{}: refers outside itself: {outside:?}",
            r.id
        );
        // Input text reaches the page escaped: no bundle string makes markup.
        assert_eq!(html.matches("<script").count(), 1, "{}", r.id);
    }
}

#[test]
fn the_self_containment_check_sees_outside_references() {
    for bad in [
        "<img src=\"x.png\">",
        "<a href=\"https://example.org/\">",
        "<style>body{background:url(x.png)}</style>",
        "<link rel=stylesheet href=x.css>",
        "<script src='//cdn/x.js'></script>",
        "<svg><image xlink:href=\"a.png\"/></svg>",
    ] {
        assert!(!outside_references(bad).is_empty(), "{bad}");
    }
    assert!(
        outside_references(
            "<a href=\"#finding-1\">x</a><svg xmlns=\"http://www.w3.org/2000/svg\"></svg><script>// sort\n</script>\
             <td>src=10.0.0.1 dst=10.0.0.2 see https://example.org/</td>"
        )
        .is_empty()
    );
}

#[test]
fn every_sample_reads_well_as_markdown() {
    let dir = tempfile::tempdir().unwrap();
    for r in render_all(dir.path()) {
        let md = &r.markdown;
        let lines = md.lines().count();
        assert!(lines < MAX_MD_LINES, "{}: {lines} lines", r.id);
        assert!(md.starts_with("# capsnap report: "), "{}", r.id);
        assert!(
            !md.contains("<svg") && !md.contains("<div"),
            "{}: markup in markdown",
            r.id
        );
        assert!(!md.contains("\n\n\n"), "{}: runs of blank lines", r.id);
        for f in found(&r.expect) {
            let id = f["detection"].as_str().unwrap();
            assert!(
                md.contains(&format!("(`{id}`)")),
                "{}: no finding {id}",
                r.id
            );
            assert!(
                md.contains(f["action"].as_str().unwrap()),
                "{}: no action for {id}",
                r.id
            );
            assert!(
                md.contains(&format!("--only {id}")),
                "{}: no command for {id}",
                r.id
            );
        }
        for ns in namespaces(&r.bundle) {
            assert!(
                md.contains(&format!("| {ns} |")),
                "{}: no namespace {ns}",
                r.id
            );
        }
        // Tables keep their shape: every row of a table has the header's cells.
        let mut width = None;
        for line in md.lines() {
            if line.starts_with('|') {
                let cells =
                    line.matches(" | ").count() + line.matches("|---").count().saturating_sub(1);
                let w = *width.get_or_insert(cells);
                assert_eq!(cells, w, "{}: a table row of another width: {line}", r.id);
            } else {
                width = None;
            }
        }
    }
}

#[test]
fn every_sample_page_renders_in_a_browser() {
    let Some(chrome) = chromium() else {
        eprintln!(
            "SKIPPED every_sample_page_renders_in_a_browser: no chromium on this machine (apt-get install chromium; .ci/run does)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for r in render_all(dir.path()) {
        let dom = headless(&chrome, &r.html, &["--dump-dom"]);
        assert!(
            dom.contains("capsnap report"),
            "{}: no page in the DOM",
            r.id
        );
        // What was collected.
        assert!(
            section(&dom, "collected").contains("Linux"),
            "{}: no kernel",
            r.id
        );
        // Every finding, with its evidence; every RST frame of the
        // evidence as a marked row.
        let findings = section(&dom, "findings");
        for f in found(&r.expect) {
            let id = f["detection"].as_str().unwrap();
            assert!(
                findings.contains(&format!("({id})")),
                "{}: no finding {id}",
                r.id
            );
            for row in f["evidence"].as_array().into_iter().flatten() {
                if row["evidence"] == "rst" {
                    let frame = row["frame"].to_string();
                    let marked = findings.split("<tr class=\"mark\">").skip(1).any(|tr| {
                        tr.split("</tr>")
                            .next()
                            .unwrap_or("")
                            .contains(&format!("<td>{frame}</td>"))
                    });
                    assert!(
                        marked,
                        "{}: RST frame {frame} not a marked evidence row",
                        r.id
                    );
                }
            }
        }
        // Every namespace.
        let ns_section = section(&dom, "namespaces");
        for ns in namespaces(&r.bundle) {
            assert!(
                ns_section.contains(&format!("<h3>{ns}")),
                "{}: no namespace {ns}",
                r.id
            );
        }
        // A chart of the window.
        assert!(
            section(&dom, "timeline").contains("<svg"),
            "{}: no timeline chart",
            r.id
        );
        // An RST only the node saw is drawn as such in the flow's ladder.
        if found(&r.expect)
            .iter()
            .any(|f| f["detection"] == "host-only-rst")
        {
            let flows = section(&dom, "flows");
            assert!(
                flows.contains("<svg") && flows.contains("[R] seq"),
                "{}: no ladder with the RST",
                r.id
            );
            assert!(
                flows.contains("not seen here"),
                "{}: the ladder does not show the missing RST",
                r.id
            );
        }
        let shot = dir.path().join(format!("{}.png", r.id));
        headless(
            &chrome,
            &r.html,
            &[
                "--window-size=1280,1600",
                &format!("--screenshot={}", shot.display()),
            ],
        );
        let (share, colours) = ink(&shot);
        assert!(
            share > 0.05 && colours > 50,
            "{}: the screenshot looks blank ({:.1}% ink, {colours} colours)",
            r.id,
            share * 100.0
        );
    }
}

#[test]
fn a_blank_screenshot_is_seen_as_blank() {
    let Some(chrome) = chromium() else {
        eprintln!("SKIPPED a_blank_screenshot_is_seen_as_blank: no chromium on this machine");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("blank.html");
    std::fs::write(&page, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let shot = dir.path().join("blank.png");
    headless(
        &chrome,
        &page,
        &[
            "--window-size=640,480",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let (w, h, _, _) = decode_png(&std::fs::read(&shot).unwrap());
    assert_eq!((w, h), (640, 480));
    let (share, colours) = ink(&shot);
    assert!(share < 0.001 && colours <= 2, "{share} {colours}");
}

#[test]
fn captures_alone_and_globs_of_bundles_give_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("basic.html");
    let out = capsnap(&[
        "report",
        samples().join("basic.pcapng").to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    // The SYNs to port 82 that were never answered (make-basic-capture.sh).
    assert!(
        html.contains("timed out after 3 SYN retransmits"),
        "no connect-timeout finding"
    );
    assert!(html.contains("cannot tell") || html.contains("Could not tell"));
    let glob = format!("{}/*.capsnap", samples().display());
    let md = capsnap(&["report", &glob, "--format", "markdown"]);
    assert!(
        md.status.success(),
        "{}",
        String::from_utf8_lossy(&md.stderr)
    );
    let md = String::from_utf8(md.stdout).unwrap();
    for id in kept() {
        assert!(
            md.contains(&format!("`{id}.capsnap`")),
            "glob page lacks bundle {id}"
        );
    }
}

#[test]
fn detect_points_to_the_report() {
    let bundle = samples().join("host-only-rst.capsnap");
    let out = capsnap(&["detect", bundle.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!(
            "capsnap report {} -o report.html",
            bundle.display()
        )),
        "{stdout}"
    );
}

#[test]
fn text_from_the_inputs_cannot_make_markup() {
    // A namespace label is whatever the node called it: here, markup.
    let dir = tempfile::tempdir().unwrap();
    let label = "<script>alert(1)</script>|x";
    let ns = dir
        .path()
        .join("node-1/netns/%3Cscript%3Ealert(1)%3C%2Fscript%3E%7Cx/proc/net");
    std::fs::create_dir_all(&ns).unwrap();
    std::fs::write(
        ns.join("sockstat"),
        "sockets: used 3\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 1\n",
    )
    .unwrap();
    let input = dir.path().join("node-1");
    let page = dir.path().join("page.html");
    let out = capsnap(&[
        "report",
        input.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let escaped = [
        "&lt;script&gt;alert(1)&lt;/script&gt;|x",
        "&#60;script&#62;alert(1)&#60;/script&#62;|x",
    ];
    assert!(
        escaped.iter().any(|e| html.contains(e)),
        "label not shown escaped"
    );
    assert!(!html.contains(label));
    assert_eq!(html.matches("<script").count(), 1);
    let md = capsnap(&["report", input.to_str().unwrap(), "--format", "markdown"]);
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains("| <script>alert(1)</script>\\|x |"), "{md}");
}
