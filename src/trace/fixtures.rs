//! Test fixtures for the trace module: traces made by hand, a minimal JSON parser and a minimal
//! XML checker (std only, like the exporters they check).

use std::time::{Duration, Instant};

use super::{Trace, TraceKind};
use crate::runtime::recorder::Recorder;
use crate::runtime::task::TaskId;
use crate::runtime::task::WaitingOn;

/// Builds a trace from `(seconds, task, kind)` triples on a loop started at `start`.
pub(crate) fn trace_of(start: Instant, events: Vec<(f64, u64, TraceKind)>) -> Trace {
    let mut rec = Recorder::new(start);
    for (at, task, kind) in events {
        rec.record(start + Duration::from_secs_f64(at), TaskId(task), kind);
    }
    Trace::recorded(&rec)
}

pub(crate) fn spawned(name: &str) -> TraceKind {
    TraceKind::Spawned { name: name.to_string() }
}

/// The phase program's part 2, as the hooks should record it: main (task 1) spawns three
/// phases sleeping 0, 5 and 10 s, waits 6 s, and phase 2 (task 4) is cancelled at 6 s.
pub(crate) fn phase_trace() -> Trace {
    let start = Instant::now();
    let due = |s: u64| TraceKind::Parked(WaitingOn::Timer(start + Duration::from_secs(s)));
    trace_of(
        start,
        vec![
            (0.0, 1, spawned("Task-1")),
            (0.0, 1, TraceKind::Polled),
            (0.0, 2, spawned("Task-2")),
            (0.0, 3, spawned("Task-3")),
            (0.0, 4, spawned("Task-4")),
            (0.0, 1, TraceKind::Parked(WaitingOn::Gather(3))),
            (0.0, 2, TraceKind::Polled),
            (0.0, 2, due(0)),
            (0.0, 3, TraceKind::Polled),
            (0.0, 3, due(5)),
            (0.0, 4, TraceKind::Polled),
            (0.0, 4, due(10)),
            (0.0, 2, TraceKind::Woken),
            (0.0, 2, TraceKind::Polled),
            (0.0, 2, TraceKind::Done),
            (5.0, 3, TraceKind::Woken),
            (5.0, 3, TraceKind::Polled),
            (5.0, 3, TraceKind::Done),
            (6.0, 1, TraceKind::Woken),
            (6.0, 1, TraceKind::Polled),
            (6.0, 4, TraceKind::Woken),
            (6.0, 1, TraceKind::Done),
            (6.0, 4, TraceKind::Cancelled),
        ],
    )
}

/// Returns `trace` with its task ids raised by `by` (another loop's run of the same program).
pub(crate) fn renumbered(trace: Trace, by: u64) -> Trace {
    let events = trace
        .events
        .into_iter()
        .map(|mut e| {
            e.task = TaskId(e.task.0 + by);
            if let TraceKind::Spawned { name } = &mut e.kind {
                *name = format!("Task-{}", e.task);
            }
            e
        })
        .collect();
    Trace { runs: trace.runs, ..Trace::from_events(trace.start, events) }
}

// ----- A minimal JSON parser, to check that an export is valid JSON -----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub(crate) fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
    pub(crate) fn num(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at {}", p.i));
        }
        Ok(v)
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
    }
    fn eat(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", b as char, self.i))
        }
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i).copied() {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    fields.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.i)),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Json::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Json::Bool(false))
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Json::Null)
            }
            Some(b'-' | b'0'..=b'9') => {
                let from = self.i;
                while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[from..self.i]).unwrap();
                text.parse().map(Json::Num).map_err(|_| format!("bad number {text:?}"))
            }
            _ => Err(format!("unexpected input at {}", self.i)),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(format!("expected a string at {}", self.i));
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let rest = std::str::from_utf8(&self.s[self.i..]).map_err(|e| e.to_string())?;
            let c = rest.chars().next().ok_or("unterminated string")?;
            self.i += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                            self.i += 4;
                            let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            out.push(char::from_u32(code).ok_or("a surrogate escape")?);
                        }
                        _ => return Err(format!("bad escape at {}", self.i)),
                    }
                }
                c if (c as u32) < 0x20 => return Err(format!("raw control character at {}", self.i)),
                c => out.push(c),
            }
        }
    }
}

/// Returns the trace events of a Chrome JSON export, checking its top level.
pub(crate) fn chrome_events(trace: &Trace) -> Vec<Json> {
    let text = trace.to_chrome_json();
    let doc = Parser::parse(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"));
    match doc.get("traceEvents") {
        Some(Json::Arr(events)) => events.clone(),
        other => panic!("no traceEvents array: {other:?}"),
    }
}

// ----- A minimal XML checker: tags balance, text holds no raw markup -----

/// Checks that `svg` is well-formed: every tag closes in order, attribute values are quoted,
/// and `&` only starts an entity. Returns the text content, entities decoded.
pub(crate) fn check_xml(svg: &str) -> Result<String, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut text = String::new();
    let mut rest = svg;
    while let Some(lt) = rest.find('<') {
        text.push_str(&decode(&rest[..lt])?);
        let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
        let tag = &rest[lt + 1..gt];
        if tag.contains('<') {
            return Err(format!("'<' inside a tag: {tag:?}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let name = tag.split_whitespace().next().ok_or("an empty tag")?.trim_end_matches('/');
            // Attribute values: an even number of quotes, entities valid.
            if tag.matches('"').count() % 2 != 0 {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
            decode(tag)?;
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[gt + 1..];
    }
    text.push_str(&decode(rest)?);
    if stack.is_empty() {
        Ok(text)
    } else {
        Err(format!("unclosed elements {stack:?}"))
    }
}

fn decode(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').ok_or(format!("bare & in {s:?}"))? + amp;
        out.push(match &rest[amp + 1..semi] {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            other => return Err(format!("unknown entity &{other};")),
        });
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
