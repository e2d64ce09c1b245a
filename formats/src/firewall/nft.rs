//! `nft -j list ruleset` (libnftables-json(5); capsnap runs it in every
//! namespace when the window opens and when it closes) into
//! `firewall_rules`: one row per rule and per base chain's policy, with
//! the rule's `counter` at each end.
//!
//! The document is `{"nftables": [OBJECT, ...]}`, each object one of
//! `metainfo`, `table`, `chain`, `rule`, `set`, `map`, `counter` (a named
//! counter), `quota` ... (nftables src/json.c, `do_list_ruleset_json`). A
//! rule is `{"family", "table", "chain", "handle", "comment"?, "expr":
//! [STATEMENT, ...]}`; its counters are in a `{"counter": {"packets",
//! "bytes"}}` statement or, for `counter name "x"`, in the named counter
//! object. A rule has no position in the JSON other than its order, and
//! positions shift when rules are inserted; its `handle` is unique in its
//! table and never reused while the table exists (net/netfilter/
//! nf_tables_api.c, `nf_tables_alloc_handle`), so the rule at window open
//! is found by family, table, chain and handle.
//!
//! iptables-nft keeps its rules in nftables tables of family ip/ip6 named
//! like iptables' (filter, nat, mangle, raw, security), so they show here
//! too, translated and partly as opaque `xt` matches; iptables-save of the
//! same namespace lists them already, with the rule text people know.
//! Those tables are left out here.

use crate::rows::{Reader, Rows, V, file_name_is, text};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Reads `nft -j list ruleset` output.
pub const READER: Reader = Reader {
    table: &super::TABLE,
    what: "nft -j list ruleset",
    claims: |path, head| {
        file_name_is(path, &["nft-ruleset.json"]) || {
            // `{"nftables": [` with any JSON white space.
            let t = text(head);
            t.trim_start()
                .strip_prefix('{')
                .is_some_and(|r| r.trim_start().starts_with("\"nftables\""))
        }
    },
    superseded_by: &[],
    parse,
};

/// One row to be: a rule, or a base chain's policy (no handle, no rule).
struct Line<'a> {
    family: &'a str,
    table: &'a str,
    chain: &'a str,
    handle: Option<u64>,
    target: Option<String>,
    rule: Option<String>,
    counters: Option<(u64, u64)>,
}

/// What finds a rule in the other copy.
type Key<'a> = (&'a str, &'a str, &'a str, u64);

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let all = objects(input)?;
    // The tables iptables-save listed in this namespace: iptables-nft
    // stores its rules in nftables tables of the same family and name, so
    // reading them here as well would list every such rule twice.
    let mut covered: HashSet<(&str, String)> = HashSet::new();
    for (family, artifact) in [
        ("ip", &crate::bundle::IPTABLES_SAVE),
        ("ip6", &crate::bundle::IP6TABLES_SAVE),
    ] {
        if let Some(bytes) = rows.beside(artifact.path) {
            for t in super::tables_listed(&text(&bytes)) {
                covered.insert((family, t.to_owned()));
            }
        }
    }
    let open = match rows.at_open().map(objects) {
        Some(Ok(o)) => Some(o),
        Some(Err(why)) => {
            rows.skip(
                0,
                format!(
                    "the copy taken when the window opened is not read ({why}): no counts at open"
                ),
            );
            None
        }
        None => None,
    };
    let mut before: HashMap<Key, Option<(u64, u64)>> = HashMap::new();
    if let Some(open) = &open {
        walk(open, &mut |line| {
            if let Ok(l) = line
                && let Some(h) = l.handle
            {
                before.insert((l.family, l.table, l.chain, h), l.counters);
            }
        });
    }
    let mut positions: HashMap<(&str, &str, &str), u32> = HashMap::new();
    let mut pending = Vec::new();
    walk(&all, &mut |line| match line {
        Ok(l) => pending.push(l),
        Err((n, why)) => rows.skip(n, why),
    });
    for l in pending {
        if covered.contains(&(l.family, l.table.to_owned())) {
            continue;
        }
        let position = l.handle.map(|_| {
            let p = positions.entry((l.family, l.table, l.chain)).or_default();
            *p += 1;
            u64::from(*p)
        });
        let then = l
            .handle
            .and_then(|h| before.get(&(l.family, l.table, l.chain, h)))
            .copied()
            .flatten();
        let (packets, bytes) = l.counters.unzip();
        let delta = l
            .counters
            .zip(then)
            .map(|((now, _), (was, _))| now.saturating_sub(was));
        let family = match l.family {
            "ip" => V::U64(4),
            "ip6" => V::U64(6),
            _ => V::Null,
        };
        rows.push(&[
            family,
            V::Str(l.table),
            V::Str(l.chain),
            V::from(position),
            V::from(l.target.as_deref()),
            V::from(l.rule.as_deref()),
            V::from(packets),
            V::from(bytes),
            V::from(then.map(|c| c.0)),
            V::from(then.map(|c| c.1)),
            V::from(delta),
            V::Str(l.family),
            V::from(l.handle),
        ]);
    }
    Ok(())
}

/// The objects of the `nftables` array.
fn objects(input: &[u8]) -> Result<Vec<Value>, String> {
    let doc: Value = serde_json::from_slice(input).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => format!("the JSON is cut short: {e}"),
        _ => format!("not JSON as nft -j prints it: {e}"),
    })?;
    match doc {
        Value::Object(mut m) => match m.remove("nftables") {
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(format!("\"nftables\" is {}, not an array", kind(&other))),
            None => Err("no \"nftables\" array: not nft -j output".into()),
        },
        other => Err(format!(
            "the document is {}, not an object with an \"nftables\" array",
            kind(&other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Each base chain's policy and each rule, in the order of the document,
/// or a damaged object (its 1-based number in the array, why).
#[allow(clippy::type_complexity)]
fn walk<'a>(objects: &'a [Value], out: &mut dyn FnMut(Result<Line<'a>, (usize, String)>)) {
    // Named counters first: a rule's `counter name "x"` counts in them.
    let mut named: HashMap<(&str, &str, &str), (u64, u64)> = HashMap::new();
    for o in objects {
        if let Some(c) = o.get("counter").and_then(Value::as_object)
            && let (Some(f), Some(t), Some(n)) =
                (str_of(c, "family"), str_of(c, "table"), str_of(c, "name"))
            && let Ok(counts) = counts(c)
        {
            named.insert((f, t, n), counts);
        }
    }
    for (i, o) in objects.iter().enumerate() {
        let n = i + 1;
        let Some((what, body)) = o.as_object().and_then(|m| m.iter().next()) else {
            out(Err((
                n,
                format!("object {n} is {}, not an object", kind(o)),
            )));
            continue;
        };
        let result = match what.as_str() {
            "chain" => chain(body).transpose(),
            "rule" => rule(body, &named).map(Some),
            _ => Ok(None),
        };
        match result {
            Ok(Some(line)) => out(Ok(line)),
            Ok(None) => {}
            Err(why) => out(Err((n, format!("{what} (object {n}): {why}")))),
        }
    }
}

/// A chain's policy row: only base chains (with a hook) have a policy.
fn chain(body: &Value) -> Option<Result<Line<'_>, String>> {
    let Some(c) = body.as_object() else {
        return Some(Err(format!("is {}, not an object", kind(body))));
    };
    let policy = c.get("policy")?;
    Some((|| {
        let policy = policy
            .as_str()
            .ok_or_else(|| format!("policy is {}, not a string", kind(policy)))?;
        Ok(Line {
            family: need_str(c, "family")?,
            table: need_str(c, "table")?,
            chain: need_str(c, "name")?,
            handle: None,
            target: Some(policy.to_ascii_uppercase()),
            rule: None,
            counters: None,
        })
    })())
}

fn rule<'a>(
    body: &'a Value,
    named: &HashMap<(&str, &str, &str), (u64, u64)>,
) -> Result<Line<'a>, String> {
    let r = body
        .as_object()
        .ok_or_else(|| format!("is {}, not an object", kind(body)))?;
    let family = need_str(r, "family")?;
    let table = need_str(r, "table")?;
    let chain = need_str(r, "chain")?;
    let handle = r
        .get("handle")
        .ok_or("has no handle")?
        .as_u64()
        .ok_or_else(|| format!("handle {} is not a whole number below 2^64", r["handle"]))?;
    let exprs = match r.get("expr") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(other) => return Err(format!("expr is {}, not an array", kind(other))),
        None => &[],
    };
    let mut counters = None;
    for s in exprs {
        match s.get("counter") {
            Some(Value::Object(c)) => {
                counters = Some(counts(c)?);
                break;
            }
            Some(Value::String(name)) => {
                counters = named.get(&(family, table, name.as_str())).copied();
                break;
            }
            _ => {}
        }
    }
    let mut text = String::new();
    for s in exprs {
        if !text.is_empty() {
            text.push(' ');
        }
        statement(s, &mut text);
    }
    if let Some(c) = r.get("comment") {
        text.push_str(" comment ");
        quoted(c, &mut text);
    }
    Ok(Line {
        family,
        table,
        chain,
        handle: Some(handle),
        // A verdict is always last; `log` names the rule only when no
        // verdict or NAT statement follows it.
        target: exprs.iter().rev().find_map(target),
        rule: Some(text.trim_start().to_owned()),
        counters,
    })
}

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

fn need_str<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{key} is {}, not a string", kind(other))),
        None => Err(format!("has no {key}")),
    }
}

/// `{"packets": N, "bytes": N}`.
fn counts(c: &Map<String, Value>) -> Result<(u64, u64), String> {
    let one = |key: &str| match c.get(key) {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("counter {key} {v} is not a whole number below 2^64")),
        None => Err(format!("counter has no {key}")),
    };
    Ok((one("packets")?, one("bytes")?))
}

/// What the rule does in the end, named as iptables names its targets, so
/// that one query reads both (`target IN ('DROP', 'REJECT')`).
fn target(s: &Value) -> Option<String> {
    let (key, body) = s.as_object()?.iter().next()?;
    Some(match key.as_str() {
        "accept" | "drop" | "reject" | "return" | "queue" | "masquerade" | "snat" | "dnat"
        | "redirect" | "notrack" | "log" => key.to_ascii_uppercase(),
        "jump" | "goto" => body.get("target")?.as_str()?.to_owned(),
        _ => return None,
    })
}

/// Statements printed with their name alone when their body is null.
const BARE: &[&str] = &[
    "accept",
    "drop",
    "continue",
    "return",
    "masquerade",
    "notrack",
    "reject",
    "log",
    "queue",
    "counter",
    "redirect",
];

/// Meta keys nft prints without `meta` (nftables src/meta.c,
/// `meta_key_is_unqualified`).
const UNQUALIFIED_META: &[&str] = &["iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"];

/// A statement as `nft list` prints it (counter values left out: they are
/// in their own columns), or its compact JSON when it is one this does not
/// know.
fn statement(s: &Value, out: &mut String) {
    let Some((key, body)) = s
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.iter().next())
    else {
        out.push_str(&s.to_string());
        return;
    };
    let key = key.as_str();
    if body.is_null() && BARE.contains(&key) {
        out.push_str(key);
        return;
    }
    match (key, body) {
        ("match", Value::Object(m)) => {
            let (Some(left), Some(right)) = (m.get("left"), m.get("right")) else {
                out.push_str(&s.to_string());
                return;
            };
            let op = str_of(m, "op");
            // Flags under a mask: nft prints `tcp flags syn / syn,ack`
            // for `tcp flags & (syn | ack) == syn`.
            if let (None | Some("=="), Some([x, mask @ (Value::Array(_) | Value::String(_))])) = (
                op,
                left.get("&").and_then(Value::as_array).map(Vec::as_slice),
            ) {
                expr(x, out);
                out.push(' ');
                expr(right, out);
                out.push_str(" / ");
                expr(mask, out);
                return;
            }
            expr(left, out);
            match op {
                None | Some("==" | "in") => {}
                Some(op) => {
                    out.push(' ');
                    out.push_str(op);
                }
            }
            out.push(' ');
            let name_of_interface = left
                .get("meta")
                .and_then(|m| m.get("key"))
                .and_then(Value::as_str)
                .is_some_and(|k| UNQUALIFIED_META.contains(&k) || k.ends_with("name"));
            match right {
                Value::String(v) if name_of_interface && !v.starts_with('@') => quoted(right, out),
                _ => expr(right, out),
            }
        }
        ("counter", Value::Object(_)) => out.push_str("counter"),
        ("counter", Value::String(_)) => {
            out.push_str("counter name ");
            quoted(body, out);
        }
        ("jump" | "goto", Value::Object(m)) if m.get("target").is_some_and(Value::is_string) => {
            out.push_str(key);
            out.push(' ');
            expr(&m["target"], out);
        }
        ("reject", Value::Object(m)) => {
            out.push_str("reject");
            if let Some(t) = m.get("type") {
                out.push_str(" with ");
                expr(t, out);
                if let Some(e) = m.get("expr") {
                    out.push(' ');
                    expr(e, out);
                }
            }
        }
        ("snat" | "dnat" | "masquerade" | "redirect", Value::Object(m)) => {
            out.push_str(key);
            // `snat ip to 10.0.0.1` in an inet table.
            if let Some(f) = m.get("family") {
                out.push(' ');
                expr(f, out);
            }
            if m.contains_key("addr") || m.contains_key("port") {
                out.push_str(" to ");
                if let Some(a) = m.get("addr") {
                    expr(a, out);
                }
                if let Some(p) = m.get("port") {
                    out.push(':');
                    expr(p, out);
                }
            }
            if let Some(f) = m.get("flags") {
                out.push(' ');
                expr(f, out);
            }
        }
        ("log", Value::Object(m)) => {
            // In nft's order (nftables src/statement.c, log_stmt_print).
            out.push_str("log");
            for k in [
                "prefix",
                "group",
                "snaplen",
                "queue-threshold",
                "level",
                "flags",
            ] {
                let Some(v) = m.get(k) else { continue };
                out.push(' ');
                out.push_str(k);
                out.push(' ');
                if k == "prefix" {
                    quoted(v, out);
                } else {
                    expr(v, out);
                }
            }
        }
        ("limit", Value::Object(m)) => {
            out.push_str("limit rate ");
            if m.get("inv").and_then(Value::as_bool) == Some(true) {
                out.push_str("over ");
            }
            let unit = str_of(m, "rate_unit").filter(|u| *u != "packets");
            if let Some(r) = m.get("rate") {
                expr(r, out);
            }
            if let Some(u) = unit {
                out.push(' ');
                out.push_str(u);
            }
            out.push('/');
            if let Some(p) = m.get("per") {
                expr(p, out);
            }
            // nft leaves out the default burst of 5 packets (0 bytes).
            match (m.get("burst").and_then(Value::as_u64), unit) {
                (None | Some(5), None) | (None | Some(0), Some(_)) => {}
                (Some(b), u) => {
                    out.push_str(&format!(" burst {b} {}", u.unwrap_or("packets")));
                }
            }
        }
        ("xt", Value::Object(m)) => {
            out.push_str("xt");
            for k in ["type", "name"] {
                if let Some(v) = m.get(k) {
                    out.push(' ');
                    expr(v, out);
                }
            }
        }
        ("mangle", Value::Object(m)) if m.contains_key("key") && m.contains_key("value") => {
            expr(&m["key"], out);
            out.push_str(" set ");
            expr(&m["value"], out);
        }
        ("queue", Value::Object(m)) => {
            out.push_str("queue");
            for (k, v) in m {
                out.push(' ');
                out.push_str(k);
                out.push(' ');
                expr(v, out);
            }
        }
        ("vmap", Value::Object(m)) if m.contains_key("key") && m.contains_key("data") => {
            expr(&m["key"], out);
            out.push_str(" vmap ");
            expr(&m["data"], out);
        }
        ("set" | "map", Value::Object(m))
            if m.contains_key("op") && m.contains_key("elem") && m.contains_key("set") =>
        {
            // A set updated from the packet path: `add @s { ip saddr }`.
            expr(&m["op"], out);
            out.push(' ');
            expr(&m["set"], out);
            out.push_str(" { ");
            expr(&m["elem"], out);
            if let Some(d) = m.get("data") {
                out.push_str(" : ");
                expr(d, out);
            }
            out.push_str(" }");
        }
        _ if verdict(s, out) => {}
        _ => out.push_str(&s.to_string()),
    }
}

/// A verdict (`accept`, `jump X` ...), in a statement or a verdict map's
/// data. False when `v` is none.
fn verdict(v: &Value, out: &mut String) -> bool {
    let Some((key, body)) = v
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.iter().next())
    else {
        return false;
    };
    match (key.as_str(), body) {
        ("accept" | "drop" | "continue" | "return", Value::Null) => out.push_str(key),
        ("jump" | "goto", Value::Object(m)) if m.get("target").is_some_and(Value::is_string) => {
            out.push_str(key);
            out.push(' ');
            expr(&m["target"], out);
        }
        _ => return false,
    }
    true
}

/// An expression as `nft list` prints it, or its compact JSON.
fn expr(v: &Value, out: &mut String) {
    let obj = match v {
        Value::String(s) => return out.push_str(s),
        Value::Number(n) => return out.push_str(&n.to_string()),
        Value::Bool(b) => return out.push_str(if *b { "true" } else { "false" }),
        // A list of flags or values (`ct state established,related`).
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                expr(item, out);
            }
            return;
        }
        Value::Null => return out.push_str("null"),
        Value::Object(m) => m,
    };
    let Some((key, body)) = obj.iter().next().filter(|_| obj.len() == 1) else {
        return out.push_str(&v.to_string());
    };
    let field = |k: &str| body.get(k);
    let two = |out: &mut String, a: &str, b: &str| {
        out.push_str(a);
        out.push(' ');
        out.push_str(b);
    };
    match key.as_str() {
        "payload" => match (
            field("protocol").and_then(Value::as_str),
            field("field").and_then(Value::as_str),
        ) {
            (Some(p), Some(f)) => two(out, p, f),
            _ => match (field("base"), field("offset"), field("len")) {
                (Some(b), Some(o), Some(l)) => {
                    out.push('@');
                    expr(b, out);
                    out.push(',');
                    expr(o, out);
                    out.push(',');
                    expr(l, out);
                }
                _ => out.push_str(&v.to_string()),
            },
        },
        "meta" => match field("key").and_then(Value::as_str) {
            Some(k) if UNQUALIFIED_META.contains(&k) => out.push_str(k),
            Some(k) => two(out, "meta", k),
            None => out.push_str(&v.to_string()),
        },
        "ct" => match field("key").and_then(Value::as_str) {
            Some(k) => {
                out.push_str("ct");
                for part in ["dir", "family"] {
                    if let Some(p) = field(part).and_then(Value::as_str) {
                        out.push(' ');
                        out.push_str(p);
                    }
                }
                out.push(' ');
                out.push_str(k);
            }
            None => out.push_str(&v.to_string()),
        },
        "exthdr" | "tcp option" | "ip option" | "sctp chunk" | "dccp option" => {
            match (
                field("name").and_then(Value::as_str),
                field("field").and_then(Value::as_str),
            ) {
                (Some(n), f) => {
                    if key != "exthdr" {
                        out.push_str(key);
                        out.push(' ');
                    }
                    out.push_str(n);
                    if let Some(f) = f {
                        out.push(' ');
                        out.push_str(f);
                    }
                }
                _ => out.push_str(&v.to_string()),
            }
        }
        "rt" | "socket" | "osf" | "ipsec" => match field("key").and_then(Value::as_str) {
            Some(k) => two(out, key, k),
            None => out.push_str(&v.to_string()),
        },
        "fib" => match (field("result").and_then(Value::as_str), field("flags")) {
            (Some(r), flags) => {
                out.push_str("fib ");
                match flags {
                    Some(Value::Array(f)) => {
                        for (i, f) in f.iter().enumerate() {
                            if i > 0 {
                                out.push_str(" . ");
                            }
                            expr(f, out);
                        }
                    }
                    Some(f) => expr(f, out),
                    None => {}
                }
                out.push(' ');
                out.push_str(r);
            }
            _ => out.push_str(&v.to_string()),
        },
        "set" => {
            out.push_str("{ ");
            let items = body
                .as_array()
                .map_or(std::slice::from_ref(body), Vec::as_slice);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match item.as_array().map(Vec::as_slice) {
                    // A map's element: key and data (a verdict in a vmap).
                    Some([k, d]) => {
                        expr(k, out);
                        out.push_str(" : ");
                        if !verdict(d, out) {
                            expr(d, out);
                        }
                    }
                    _ => expr(item, out),
                }
            }
            out.push_str(" }");
        }
        "prefix" => match (field("addr"), field("len")) {
            (Some(a), Some(l)) => {
                expr(a, out);
                out.push('/');
                expr(l, out);
            }
            _ => out.push_str(&v.to_string()),
        },
        "range" => match body.as_array().map(Vec::as_slice) {
            Some([a, b]) => {
                expr(a, out);
                out.push('-');
                expr(b, out);
            }
            _ => out.push_str(&v.to_string()),
        },
        "concat" => match body.as_array() {
            Some(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" . ");
                    }
                    expr(p, out);
                }
            }
            None => out.push_str(&v.to_string()),
        },
        "elem" => match field("val") {
            Some(val) => expr(val, out),
            None => out.push_str(&v.to_string()),
        },
        "map" => match (field("key"), field("data")) {
            (Some(k), Some(d)) => {
                expr(k, out);
                out.push_str(" map ");
                expr(d, out);
            }
            _ => out.push_str(&v.to_string()),
        },
        "&" | "|" | "^" | "<<" | ">>" => match body.as_array().map(Vec::as_slice) {
            Some([a, b]) => {
                expr(a, out);
                out.push(' ');
                out.push_str(key);
                out.push(' ');
                expr(b, out);
            }
            _ => out.push_str(&v.to_string()),
        },
        _ if verdict(v, out) => {}
        _ => out.push_str(&v.to_string()),
    }
}

/// A string in double quotes, as nft prints names and comments.
fn quoted(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        other => expr(other, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::testing::{strings, u64s};
    use crate::rows::{Beside, Origin, read, read_with};
    use arrow_array::RecordBatch;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// `nft -j list ruleset` of the lab of testdata/make-nft.sh, when the
    /// window opened and when it closed, and what else that namespace held.
    fn lab() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/nft")
    }

    fn file(name: &str) -> Vec<u8> {
        std::fs::read(lab().join(name)).unwrap_or_else(|e| panic!("testdata/nft/{name}: {e}"))
    }

    /// The lab's files as a bundle directory gives them to the reader.
    fn beside() -> Beside {
        let dir = lab();
        Arc::new(move |rel: &str| std::fs::read(dir.join(rel)).ok())
    }

    fn origin() -> Origin {
        Origin::of("b", None, "netns/nft-x/nft-ruleset.json")
    }

    fn read_lab(beside_files: Option<Beside>) -> RecordBatch {
        let (b, skipped, _) = read_with(
            &READER,
            &file("close.json"),
            Some(&file("open.json")),
            beside_files,
            origin(),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        b
    }

    /// The row of the rule with `handle` in `chain`.
    fn row(b: &RecordBatch, chain: &str, handle: u64) -> usize {
        let chains = strings(b, "chain");
        let handles = u64s(b, "handle");
        (0..b.num_rows())
            .find(|&i| chains[i].as_deref() == Some(chain) && handles[i] == Some(handle))
            .unwrap_or_else(|| panic!("no rule {handle} in {chain}"))
    }

    /// A line of `nft list ruleset` with its counter values left out, as
    /// the `rule` column holds it.
    fn without_counts(line: &str) -> String {
        let mut out = Vec::new();
        let mut words = line.split(' ').peekable();
        while let Some(w) = words.next() {
            out.push(w);
            if w == "counter" && words.peek() == Some(&"packets") {
                // packets N bytes N
                for _ in 0..4 {
                    words.next();
                }
            }
        }
        out.join(" ")
    }

    #[test]
    fn every_rule_reads_as_nft_list_prints_it() {
        let b = read_lab(Some(beside()));
        let listed = String::from_utf8(file("close.txt")).unwrap();
        // Rule lines: inside a chain, not its `type ...` line.
        let mut in_chain = false;
        let mut table = "";
        let mut expected = Vec::new();
        for line in listed.lines().map(str::trim) {
            if let Some(t) = line.strip_prefix("table ") {
                table = t.trim_end_matches(" {");
            } else if line.starts_with("chain ") {
                in_chain = true;
            } else if line == "}" {
                in_chain = false;
            } else if in_chain && !line.starts_with("type ") && !line.is_empty() {
                // iptables-save lists these two tables.
                if table != "ip filter" && table != "ip6 filter" {
                    expected.push(without_counts(line));
                }
            }
        }
        let handles = u64s(&b, "handle");
        let got: Vec<String> = strings(&b, "rule")
            .into_iter()
            .zip(&handles)
            .filter_map(|(r, h)| h.and(r))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn counters_at_both_ends_by_handle() {
        let b = read_lab(Some(beside()));
        let (packets, open, delta) = (
            u64s(&b, "packets"),
            u64s(&b, "packets_open"),
            u64s(&b, "packets_delta"),
        );
        let position = u64s(&b, "position");
        let target = strings(&b, "target");
        // The drop rule counted the lab's 4 datagrams; the rule inserted
        // before it during the window pushed it to position 2 and has no
        // count at open.
        let drop = row(&b, "output", 16);
        assert_eq!(
            (packets[drop], open[drop], delta[drop], position[drop]),
            (Some(4), Some(0), Some(4), Some(2))
        );
        assert_eq!(u64s(&b, "bytes")[drop], Some(120));
        let added = row(&b, "output", 17);
        assert_eq!(
            (packets[added], open[added], delta[added], position[added]),
            (Some(1), None, None, Some(1))
        );
        assert_eq!(target[added].as_deref(), Some("ACCEPT"));
        // `counter name "dropped_blocked"` counts in the named counter.
        let blocked = row(&b, "input", 8);
        assert_eq!((packets[blocked], delta[blocked]), (Some(3), Some(3)));
        assert_eq!(target[blocked].as_deref(), Some("DROP"));
        // No counter statement: no counts, not zero.
        let established = row(&b, "input", 6);
        assert_eq!((packets[established], delta[established]), (None, None));
        // The rule deleted during the window (ipv6-icmp accept, handle 12)
        // is gone; the ones after it keep their handles.
        assert_eq!(position[row(&b, "input", 13)], Some(6));
        assert_eq!(target[row(&b, "input", 11)].as_deref(), Some("services"));
        assert_eq!(target[row(&b, "services", 15)].as_deref(), Some("REJECT"));
        assert_eq!(
            target[row(&b, "postrouting", 4)].as_deref(),
            Some("MASQUERADE")
        );
        assert_eq!(target[row(&b, "postrouting", 5)].as_deref(), Some("LOG"));
        let dnat = row(&b, "service-dns", 12);
        assert_eq!(
            (target[dnat].as_deref(), delta[dnat]),
            (Some("DNAT"), Some(1))
        );
        assert_eq!(target[row(&b, "nat-output", 5)], None);
        // Families: inet holds both, so no IP version.
        let family = u64s(&b, "family");
        let nft_family = strings(&b, "nft_family");
        assert_eq!(
            (family[drop], nft_family[drop].as_deref()),
            (None, Some("inet"))
        );
        assert_eq!(
            (family[dnat], nft_family[dnat].as_deref()),
            (Some(4), Some("ip"))
        );
        assert_eq!(strings(&b, "netns")[drop].as_deref(), Some("nft-x"));
    }

    #[test]
    fn base_chains_give_their_policy() {
        let b = read_lab(Some(beside()));
        let (chain, target, rule) = (
            strings(&b, "chain"),
            strings(&b, "target"),
            strings(&b, "rule"),
        );
        let policies: Vec<(String, String)> = (0..b.num_rows())
            .filter(|&i| rule[i].is_none())
            .map(|i| (chain[i].clone().unwrap(), target[i].clone().unwrap()))
            .collect();
        let want = [
            ("input", "DROP"),
            ("output", "ACCEPT"),
            ("prerouting", "ACCEPT"),
            ("postrouting", "ACCEPT"),
            ("nat-output", "ACCEPT"),
        ];
        assert_eq!(policies, want.map(|(c, t)| (c.to_owned(), t.to_owned())));
        assert!(u64s(&b, "packets")[0].is_none());
    }

    #[test]
    fn tables_iptables_save_lists_are_not_listed_twice() {
        let tables = |b: &RecordBatch| {
            let (f, t) = (strings(b, "nft_family"), strings(b, "table"));
            let mut v: Vec<String> = (0..b.num_rows())
                .map(|i| format!("{} {}", f[i].as_deref().unwrap(), t[i].as_deref().unwrap()))
                .collect();
            v.dedup();
            v
        };
        let with = read_lab(Some(beside()));
        assert_eq!(tables(&with), ["inet filter", "ip nat6", "ip kube-proxy"]);
        // Read alone (no iptables-save beside it), iptables-nft's tables
        // show, its opaque `xt` matches as such.
        let alone = read_lab(None);
        assert_eq!(
            tables(&alone),
            [
                "inet filter",
                "ip nat6",
                "ip kube-proxy",
                "ip filter",
                "ip6 filter"
            ]
        );
        assert!(
            strings(&alone, "rule")
                .iter()
                .flatten()
                .any(|r| r == "meta l4proto icmp xt match icmp xt match comment counter drop")
        );
        // iptables-legacy keeps its rules out of nftables: a table of the
        // same name in nft is another one and is listed.
        let legacy: Beside = Arc::new(|rel: &str| {
            (rel == "iptables-save.txt").then(|| {
                b"# Generated by iptables-save v1.8.9 (legacy) on x\n*filter\nCOMMIT\n".to_vec()
            })
        });
        assert!(tables(&read_lab(Some(legacy))).contains(&"ip filter".to_owned()));
    }

    #[test]
    fn damaged_json_names_what_is_wrong_and_never_panics() {
        let close = file("close.json");
        let err = |input: &[u8]| read(&READER, input, origin()).unwrap_err();
        assert!(
            err(&close[..close.len() / 2]).contains("cut short"),
            "{}",
            err(&close[..100])
        );
        assert!(err(b"{\"nftables\": 5}").contains("not an array"));
        assert!(err(b"[1]").contains("not an object"));
        assert!(err(b"not json").contains("not JSON"));
        // Damaged objects are skipped and named; the rest is kept.
        let input = br#"{"nftables": [
            {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 1, "expr": [{"counter": {"packets": 1e30, "bytes": 0}}]}},
            {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": -1, "expr": []}},
            {"rule": {"family": 4, "table": "t", "chain": "c", "handle": 2}},
            {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 3, "expr": {"drop": null}}},
            {"chain": {"family": "inet", "table": "t", "name": "c", "policy": 7}},
            17,
            {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 4, "expr": [{"counter": {"packets": 18446744073709551615, "bytes": 9}}, {"drop": null}]}}
        ]}"#;
        let (b, skipped, total) = read(&READER, input, origin()).unwrap();
        assert_eq!(total, 6, "{skipped:?}");
        assert_eq!(b.num_rows(), 1);
        assert_eq!(u64s(&b, "packets"), [Some(u64::MAX)]);
        assert!(
            skipped[0]
                .reason
                .contains("packets 1e+30 is not a whole number"),
            "{skipped:?}"
        );
        assert!(skipped[1].reason.contains("handle -1"), "{skipped:?}");
        assert!(
            skipped[2].reason.contains("family is a number"),
            "{skipped:?}"
        );
        assert_eq!(skipped[0].line, 1);
        // Every prefix gives rows, skips or an error.
        for cut in (0..close.len()).step_by(7) {
            let _ = read(&READER, &close[..cut], origin());
        }
    }

    #[test]
    fn statements_render_as_nft_prints_them() {
        let cases = [
            (
                r#"{"log": {"level": "warn", "prefix": "x: ", "group": 2}}"#,
                r#"log prefix "x: " group 2 level warn"#,
            ),
            (
                r#"{"limit": {"rate": 1, "rate_unit": "mbytes", "per": "second", "burst": 0}}"#,
                "limit rate 1 mbytes/second",
            ),
            (
                r#"{"limit": {"rate": 3, "per": "minute", "burst": 10, "inv": true}}"#,
                "limit rate over 3/minute burst 10 packets",
            ),
            (
                r#"{"snat": {"family": "ip", "addr": {"range": ["10.0.0.1", "10.0.0.9"]}, "port": 1024}}"#,
                "snat ip to 10.0.0.1-10.0.0.9:1024",
            ),
            (r#"{"redirect": {"port": 15001}}"#, "redirect to :15001"),
            (
                r#"{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}"#,
                "reject with icmpx admin-prohibited",
            ),
            (r#"{"goto": {"target": "x"}}"#, "goto x"),
            (
                r#"{"match": {"op": "!=", "left": {"ct": {"key": "mark", "dir": "original"}}, "right": 1}}"#,
                "ct original mark != 1",
            ),
            (
                r#"{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 7}}"#,
                "meta mark 7",
            ),
            (
                r#"{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 3}}"#,
                "meta mark set 3",
            ),
            (
                r#"{"set": {"op": "add", "elem": {"payload": {"protocol": "ip", "field": "saddr"}}, "set": "@seen"}}"#,
                "add @seen { ip saddr }",
            ),
            // What this does not know stays as its compact JSON.
            (
                r#"{"quota": {"val": 5, "val_unit": "mbytes"}}"#,
                r#"{"quota":{"val":5,"val_unit":"mbytes"}}"#,
            ),
        ];
        for (json, want) in cases {
            let mut got = String::new();
            statement(&serde_json::from_str(json).unwrap(), &mut got);
            assert_eq!(got, want, "{json}");
        }
    }

    #[test]
    fn claims_by_name_and_by_content() {
        assert!((READER.claims)("netns/host/nft-ruleset.json", b""));
        assert!((READER.claims)("rules.json", b" {\n  \"nftables\": ["));
        assert!(!(READER.claims)("rules.json", b"{\"nft\": 1}"));
        assert!(!(READER.claims)(
            "netns/host/nft-ruleset.txt",
            b"table inet filter {"
        ));
    }
}
