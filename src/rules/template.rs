//! Alert label and annotation templates: the part of Go's `text/template` that Prometheus rule
//! files use, with Prometheus' template functions and Go's exact number formatting.
//!
//! Supported: text, `{{ pipeline }}`, `{{- … -}}` trimming, comments, `{{ $x := … }}`,
//! `{{ if … }}{{ else if … }}{{ else }}{{ end }}`, variables `$labels`, `$externalLabels`,
//! `$externalURL`, `$value` and the dot fields `.Labels`, `.ExternalLabels`, `.ExternalURL`,
//! `.Value`; functions `humanize`, `humanize1024`, `humanizeDuration`, `humanizePercentage`,
//! `printf`, `print`, `toUpper`, `toLower`, `title`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `and`,
//! `or`, `not`. Anything else (`range`, `query`, `with`, …) is refused when the rule file loads.

use super::labels::Labels;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// What a template sees.
#[derive(Clone, Debug, Default)]
pub struct Data {
    /// The sample's labels (one reference count to copy).
    pub labels: Labels,
    pub external_labels: Arc<BTreeMap<String, String>>,
    pub external_url: Arc<str>,
    pub value: f64,
}

#[derive(Clone, Debug)]
enum Val {
    Str(String),
    Num(f64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    /// An integer literal (`1`): Go's int, which comparisons never mix with a float64.
    Int(i64),
}

impl Val {
    /// The Go type a template value has, for error messages.
    fn go_type(&self) -> &'static str {
        match self {
            Val::Str(_) => "string",
            Val::Num(_) => "float64",
            Val::Bool(_) => "bool",
            Val::Map(_) => "map[string]string",
            Val::Int(_) => "int",
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Val::Str(s) => !s.is_empty(),
            Val::Num(n) => *n != 0.0,
            Val::Int(n) => *n != 0,
            Val::Bool(b) => *b,
            Val::Map(m) => !m.is_empty(),
        }
    }

    fn print(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Num(n) => go_g(*n, None),
            Val::Int(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Map(m) => {
                let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", inner.join(" "))
            }
        }
    }
}

/// Where a node is, for error messages as Go's `text/template` writes them: line and column
/// (a byte offset, from 0) in the text Prometheus expands — the template behind its variable
/// definitions, [`DEFS_LEN`] bytes on line 1 — and the node as Go prints it.
#[derive(Clone, Debug, Default)]
struct At {
    line: usize,
    col: usize,
    node: String,
}

/// Prometheus expands `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}`
/// `{{$externalURL := .ExternalURL}}{{$value := .Value}}` + the template: 112 bytes before
/// the template's first line.
const DEFS_LEN: usize = 112;

#[derive(Clone, Debug)]
enum Arg {
    Lit(Val),
    /// `$name.field…` (name without `$`) or `.Field…` (name empty).
    Var(String, Vec<String>, At),
    Pipe(Box<Pipeline>),
}

#[derive(Clone, Debug)]
struct Command {
    func: Option<String>,
    args: Vec<Arg>,
    at: At,
}

#[derive(Clone, Debug)]
struct Pipeline {
    decl: Option<String>,
    cmds: Vec<Command>,
}

impl Pipeline {
    /// Go's `PipeNode.String()`.
    fn go_string(&self) -> String {
        let cmds: Vec<&str> = self.cmds.iter().map(|c| c.at.node.as_str()).collect();
        match &self.decl {
            Some(d) => format!("${d} := {}", cmds.join(" | ")),
            None => cmds.join(" | "),
        }
    }
}

/// An error while expanding: what went wrong, at which node.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecError {
    line: usize,
    col: usize,
    node: String,
    msg: String,
}

impl ExecError {
    fn at(at: &At, msg: impl Into<String>) -> Self {
        ExecError {
            line: at.line,
            col: at.col,
            node: at.node.clone(),
            msg: msg.into(),
        }
    }

    /// The error exactly as Prometheus words it for template `name` (`__alert_<rule>`).
    pub fn go(&self, name: &str) -> String {
        format!(
            "error executing template {name}: template: {name}:{}:{}: executing \"{name}\" at <{}>: {}",
            self.line, self.col, self.node, self.msg
        )
    }
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.go("template"))
    }
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
}

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

const FUNCTIONS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "printf",
    "print",
    "toUpper",
    "toLower",
    "title",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
];

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let tokens = split(text)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&tokens, &mut pos, text)?;
        if let Some((e, _)) = end {
            return Err(format!("unexpected {{{{{e}}}}}"));
        }
        Ok(Template { nodes })
    }

    /// The text of a template without actions: its expansion, whatever the data.
    pub fn constant(&self) -> Option<&str> {
        match self.nodes.as_slice() {
            [] => Some(""),
            [Node::Text(t)] => Some(t),
            _ => None,
        }
    }

    pub fn expand(&self, data: &Data) -> Result<String, ExecError> {
        // `$labels`, `$externalLabels`, `$externalURL` and `$value` are looked up in `data`
        // when no variable of the template shadows them (see `eval_arg`): no per-expansion
        // copies of the label maps.
        let mut vars: Vec<(String, Val)> = Vec::new();
        let mut out = String::new();
        run(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}

/// Expands `t` the way Prometheus does for the labels and annotations of alerting rule
/// `rule`: an error becomes the text, worded as Prometheus words it.
pub fn expand_or_error(t: &Template, data: &Data, rule: &str) -> String {
    t.expand(data).unwrap_or_else(|e| {
        format!(
            "<error expanding template: {}>",
            e.go(&format!("__alert_{rule}"))
        )
    })
}

enum Tok {
    Text(String),
    /// An action's text, trimmed, and its byte offset in the template.
    Action(String, usize),
}

fn split(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = vec![];
    let mut rest = text;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut before = rest[..open].to_string();
        if trim_next {
            before = before.trim_start().to_string();
        }
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            before = before.trim_end().to_string();
        }
        if !before.is_empty() {
            out.push(Tok::Text(before));
        }
        let close = after.find("}}").ok_or("unclosed action")?;
        let mut inner = &after[..close];
        if trim_left {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let lead = inner.len() - inner.trim_start().len();
        let offset = text.len() - after.len() + usize::from(trim_left) + lead;
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            out.push(Tok::Action(inner.to_string(), offset));
        }
        rest = &after[close + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        out.push(Tok::Text(tail.to_string()));
    }
    Ok(out)
}

/// Parses nodes until `{{end}}` / `{{else…}}` (returned as the second value) or the end.
/// Nodes, and the `{{end}}` / `{{else…}}` that ended them with its offset.
type Parsed = (Vec<Node>, Option<(String, usize)>);

fn parse_nodes(toks: &[Tok], pos: &mut usize, text: &str) -> Result<Parsed, String> {
    let mut nodes = vec![];
    while *pos < toks.len() {
        let t = &toks[*pos];
        *pos += 1;
        match t {
            Tok::Text(s) => nodes.push(Node::Text(s.clone())),
            Tok::Action(a, off) if a == "end" || a == "else" || a.starts_with("else ") => {
                return Ok((nodes, Some((a.clone(), *off))));
            }
            Tok::Action(a, off) if a.starts_with("if ") => {
                let mut branches = vec![];
                let mut cond = parse_pipeline(&a[3..], off + 3, text)?;
                loop {
                    let (body, end) = parse_nodes(toks, pos, text)?;
                    branches.push((cond, body));
                    match end.as_ref().map(|(e, off)| (e.as_str(), *off)) {
                        Some(("end", _)) => {
                            nodes.push(Node::If(branches, vec![]));
                            break;
                        }
                        Some(("else", _)) => {
                            let (body, end) = parse_nodes(toks, pos, text)?;
                            if end.as_ref().map(|(e, _)| e.as_str()) != Some("end") {
                                return Err("missing {{end}} after {{else}}".into());
                            }
                            nodes.push(Node::If(branches, body));
                            break;
                        }
                        Some((e, off)) if e.starts_with("else if ") => {
                            cond = parse_pipeline(&e[8..], off + 8, text)?
                        }
                        _ => return Err("unexpected EOF: missing {{end}}".into()),
                    }
                }
            }
            Tok::Action(a, off) => {
                let word = a.split_whitespace().next().unwrap_or("");
                if [
                    "range", "with", "define", "template", "block", "break", "continue",
                ]
                .contains(&word)
                {
                    return Err(format!("{{{{{word}}}}} is not supported"));
                }
                nodes.push(Node::Action(parse_pipeline(a, *off, text)?));
            }
        }
    }
    Ok((nodes, None))
}

/// The tokens of an action's text `s`, each with its byte offset in the template (`s`
/// starts at `base`).
fn lex(s: &str, base: usize) -> Result<Vec<(String, usize)>, String> {
    let mut out = vec![];
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(s.len(), |(b, _)| *b);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '"' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i].1 != c {
                if c == '"' && chars[i].1 == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err("unterminated quoted string".into());
            }
            i += 1;
        } else if c == '|' || c == '(' || c == ')' {
            i += 1;
        } else if c == ':' && chars.get(i + 1).map(|(_, c)| *c) == Some('=') {
            i += 2;
        } else {
            while i < chars.len() && !chars[i].1.is_whitespace() && !"|()".contains(chars[i].1) {
                i += 1;
            }
        }
        out.push((s[at(start)..at(i)].to_string(), base + at(start)));
    }
    Ok(out)
}

/// Line (from 1) and column (a byte offset, from 0) of `offset` in the text Prometheus
/// expands, as Go's `ErrorContext` counts them.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    match before.rfind('\n') {
        Some(nl) => (1 + before.matches('\n').count(), offset - nl - 1),
        None => (1, DEFS_LEN + offset),
    }
}

fn parse_pipeline(s: &str, base: usize, text: &str) -> Result<Pipeline, String> {
    let toks = lex(s, base)?;
    let mut pos = 0;
    let p = pipeline(&toks, &mut pos, text)?;
    if pos != toks.len() {
        return Err(format!("unexpected {:?} in command", toks[pos].0));
    }
    Ok(p)
}

fn pipeline(t: &[(String, usize)], pos: &mut usize, text: &str) -> Result<Pipeline, String> {
    let tok = |i: usize| t.get(i).map(|(s, _)| s.as_str());
    let mut decl = None;
    if t.len() > *pos + 1 && t[*pos].0.starts_with('$') && t[*pos + 1].0 == ":=" {
        decl = Some(t[*pos].0[1..].to_string());
        *pos += 2;
    }
    let mut cmds = vec![];
    loop {
        let (line, col) = position(text, t.get(*pos).map_or(text.len(), |(_, o)| *o));
        let mut cmd = Command {
            func: None,
            args: vec![],
            at: At {
                line,
                col,
                node: String::new(),
            },
        };
        // The command as Go prints it: its words, a parenthesised pipeline as `(…)`.
        let mut words: Vec<String> = vec![];
        while *pos < t.len() && tok(*pos) != Some("|") && tok(*pos) != Some(")") {
            let (word, off) = &t[*pos];
            *pos += 1;
            if word == "(" {
                let inner = pipeline(t, pos, text)?;
                if tok(*pos) != Some(")") {
                    return Err("unclosed left paren".into());
                }
                *pos += 1;
                words.push(format!("({})", inner.go_string()));
                cmd.args.push(Arg::Pipe(Box::new(inner)));
                continue;
            }
            words.push(word.clone());
            if cmd.func.is_none() && cmd.args.is_empty() && is_ident(word) {
                match word.as_str() {
                    "true" => cmd.args.push(Arg::Lit(Val::Bool(true))),
                    "false" => cmd.args.push(Arg::Lit(Val::Bool(false))),
                    f if FUNCTIONS.contains(&f) => cmd.func = Some(f.to_string()),
                    f => return Err(format!("function {f:?} not defined")),
                }
            } else {
                cmd.args.push(operand(word, *off, text)?);
            }
        }
        cmd.at.node = words.join(" ");
        if cmd.func.is_none() && cmd.args.len() != 1 {
            return Err(if cmd.args.is_empty() {
                "missing value for command".into()
            } else {
                "can't give argument to non-function".into()
            });
        }
        cmds.push(cmd);
        if tok(*pos) == Some("|") {
            *pos += 1;
        } else {
            break;
        }
    }
    Ok(Pipeline { decl, cmds })
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn operand(tok: &str, offset: usize, text: &str) -> Result<Arg, String> {
    if let Some(q) = tok.strip_prefix('`') {
        return Ok(Arg::Lit(Val::Str(q.trim_end_matches('`').to_string())));
    }
    if tok.starts_with('"') {
        return serde_json::from_str::<String>(tok)
            .map(|s| Arg::Lit(Val::Str(s)))
            .map_err(|_| format!("bad string literal {tok}"));
    }
    // Go places a variable with fields at its first field (`$labels.job` at `.job`).
    let at = |from: usize| {
        let (line, col) = position(text, offset + from);
        At {
            line,
            col,
            node: tok.to_string(),
        }
    };
    if let Some(v) = tok.strip_prefix('$') {
        let mut parts = v.split('.');
        let name = parts.next().unwrap_or("").to_string();
        let first_field = tok.find('.').unwrap_or(0);
        return Ok(Arg::Var(
            name,
            parts.map(str::to_string).collect(),
            at(first_field),
        ));
    }
    if let Some(v) = tok.strip_prefix('.') {
        let fields = if v.is_empty() {
            vec![]
        } else {
            v.split('.').map(str::to_string).collect()
        };
        return Ok(Arg::Var(String::new(), fields, at(0)));
    }
    // Go: a literal without a fraction or exponent is an int constant, otherwise a float.
    if let Ok(n) = tok.parse::<i64>() {
        return Ok(Arg::Lit(Val::Int(n)));
    }
    tok.parse::<f64>()
        .map(|n| Arg::Lit(Val::Num(n)))
        .map_err(|_| format!("unexpected {tok:?} in operand"))
}

fn run(
    nodes: &[Node],
    data: &Data,
    vars: &mut Vec<(String, Val)>,
    out: &mut String,
) -> Result<(), ExecError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipeline(p, data, vars)?;
                if p.decl.is_none() {
                    out.push_str(&v.print());
                }
            }
            Node::If(branches, otherwise) => {
                let depth = vars.len();
                let mut taken = false;
                for (cond, body) in branches {
                    if eval_pipeline(cond, data, vars)?.truthy() {
                        run(body, data, vars, out)?;
                        taken = true;
                        break;
                    }
                }
                if !taken {
                    run(otherwise, data, vars, out)?;
                }
                vars.truncate(depth);
            }
        }
    }
    Ok(())
}

fn eval_pipeline(
    p: &Pipeline,
    data: &Data,
    vars: &mut Vec<(String, Val)>,
) -> Result<Val, ExecError> {
    let mut prev: Option<Val> = None;
    for c in &p.cmds {
        let mut args = Vec::with_capacity(c.args.len() + 1);
        for a in &c.args {
            args.push(eval_arg(a, data, vars)?);
        }
        if let Some(v) = prev.take() {
            args.push(v);
        }
        prev = Some(match &c.func {
            Some(f) => call(f, args).map_err(|e| {
                // Go blames a wrong argument count on the function's name alone.
                if e.starts_with("wrong number of args") {
                    let at = At {
                        node: f.clone(),
                        ..c.at.clone()
                    };
                    ExecError::at(&at, e)
                } else {
                    ExecError::at(&c.at, e)
                }
            })?,
            None => args
                .into_iter()
                .next()
                .ok_or_else(|| ExecError::at(&c.at, "missing value for command"))?,
        });
    }
    let v = prev.ok_or_else(|| ExecError::at(&At::default(), "empty pipeline"))?;
    if let Some(d) = &p.decl {
        vars.push((d.clone(), v.clone()));
    }
    Ok(v)
}

fn eval_arg(a: &Arg, data: &Data, vars: &mut Vec<(String, Val)>) -> Result<Val, ExecError> {
    match a {
        Arg::Lit(v) => Ok(v.clone()),
        Arg::Pipe(p) => eval_pipeline(p, data, vars),
        Arg::Var(name, fields, at) => {
            let fail = |msg: String| ExecError::at(at, msg);
            let user = (!name.is_empty())
                .then(|| vars.iter().rev().find(|(n, _)| n == name))
                .flatten();
            // The predefined variables and the dot's fields, read from `data` in place.
            let builtin = match (user, name.as_str(), fields.first().map(String::as_str)) {
                (Some(_), _, _) => None,
                (None, "", Some("Labels")) | (None, "labels", _) => {
                    Some(Builtin::Labels(&data.labels))
                }
                (None, "", Some("ExternalLabels")) | (None, "externalLabels", _) => {
                    Some(Builtin::Map(&data.external_labels))
                }
                (None, "", Some("ExternalURL")) | (None, "externalURL", _) => {
                    Some(Builtin::Val(Val::Str(data.external_url.to_string())))
                }
                (None, "", Some("Value")) | (None, "value", _) => {
                    Some(Builtin::Val(Val::Num(data.value)))
                }
                (None, "", Some(f)) => {
                    return Err(fail(format!(
                        "can't evaluate field {f} in type struct {{ Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }}"
                    )));
                }
                (None, "", None) => return Err(fail("dot is not supported alone".into())),
                (None, _, _) => return Err(fail(format!("undefined variable: ${name}"))),
            };
            let skip = usize::from(name.is_empty());
            let rest = &fields[skip..];
            // `applied`: how many of `rest` the lookup used (a map's first field)
            let (mut v, applied) = match (builtin, user) {
                (Some(Builtin::Map(m)), _) => match rest.first() {
                    Some(f) => (Val::Str(m.get(f).cloned().unwrap_or_default()), 1),
                    None => (Val::Map(m.clone()), 0),
                },
                (Some(Builtin::Labels(l)), _) => match rest.first() {
                    Some(f) => (Val::Str(l.get(f).to_owned()), 1),
                    None => (Val::Map(l.clone().into_map()), 0),
                },
                (Some(Builtin::Val(v)), _) => (v, 0),
                (None, Some((_, v))) => match (v, rest.first()) {
                    (Val::Map(m), Some(f)) => (Val::Str(m.get(f).cloned().unwrap_or_default()), 1),
                    (v, _) => (v.clone(), 0),
                },
                (None, None) => return Err(fail(format!("undefined variable: ${name}"))),
            };
            for f in &rest[applied..] {
                v = match v {
                    Val::Map(m) => Val::Str(m.get(f).cloned().unwrap_or_default()),
                    other => {
                        return Err(fail(format!(
                            "can't evaluate field {f} in type {}",
                            other.go_type()
                        )));
                    }
                };
            }
            Ok(v)
        }
    }
}

/// A predefined template variable, borrowed from the alert's data.
enum Builtin<'d> {
    Map(&'d BTreeMap<String, String>),
    Labels(&'d Labels),
    Val(Val),
}

fn num(v: &Val) -> Result<f64, String> {
    match v {
        Val::Num(n) => Ok(*n),
        Val::Int(n) => Ok(*n as f64),
        Val::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        Val::Bool(_) | Val::Map(_) => Err("can't convert to a number".into()),
    }
}

fn call(f: &str, args: Vec<Val>) -> Result<Val, String> {
    let one = || -> Result<&Val, String> {
        if args.len() == 1 {
            Ok(&args[0])
        } else {
            Err(format!(
                "wrong number of args for {f}: want 1 got {}",
                args.len()
            ))
        }
    };
    // An error the function itself returns, as Go's template words it.
    let num = |v: &Val| num(v).map_err(|e| format!("error calling {f}: {e}"));
    Ok(match f {
        "humanize" => Val::Str(humanize(num(one()?)?)),
        "humanize1024" => Val::Str(humanize1024(num(one()?)?)),
        "humanizeDuration" => Val::Str(humanize_duration(num(one()?)?)),
        "humanizePercentage" => Val::Str(format!("{}%", go_g(num(one()?)? * 100.0, Some(4)))),
        "toUpper" => Val::Str(one()?.print().to_uppercase()),
        "toLower" => Val::Str(one()?.print().to_lowercase()),
        "title" => Val::Str(title(&one()?.print())),
        "print" => Val::Str(go_print(&args)),
        "printf" => {
            let (fmt, rest) = args.split_first().ok_or("printf needs a format")?;
            Val::Str(printf(&fmt.print(), rest))
        }
        "not" => Val::Bool(!one()?.truthy()),
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .ok_or("and needs args")?,
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .ok_or("or needs args")?,
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            if args.len() != 2 {
                return Err(format!("{f} needs two arguments"));
            }
            let ord = match (&args[0], &args[1]) {
                (Val::Num(a), Val::Num(b)) => a.partial_cmp(b),
                (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
                (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
                (Val::Bool(a), Val::Bool(b)) if matches!(f, "eq" | "ne") => Some(a.cmp(b)),
                _ => {
                    return Err(format!(
                        "error calling {f}: incompatible types for comparison"
                    ));
                }
            };
            use std::cmp::Ordering::*;
            Val::Bool(match f {
                "eq" => ord == Some(Equal),
                "ne" => ord != Some(Equal),
                "lt" => ord == Some(Less),
                "le" => matches!(ord, Some(Less | Equal)),
                "gt" => ord == Some(Greater),
                _ => matches!(ord, Some(Greater | Equal)),
            })
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

/// Go's `strings.Title`.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn go_print(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.print());
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %f %F %e %g %x %%` with
/// flags `-+0 `, width and precision.
fn printf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let body = match (verb, arg) {
            ('v', a) => a.print(),
            ('s', Val::Str(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('q', Val::Str(s)) => format!("{s:?}"),
            ('d', Val::Int(n)) => n.to_string(),
            ('x', Val::Int(n)) => format!("{n:x}"),
            (v, Val::Int(n)) => format!("%!{v}(int={n})"),
            ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('f' | 'F', Val::Num(n)) => go_fixed(*n, prec.unwrap_or(6)),
            ('e', Val::Num(n)) => go_exp(*n, prec.unwrap_or(6)),
            ('g', Val::Num(n)) => go_g(*n, prec),
            ('t', Val::Bool(b)) => b.to_string(),
            (v, Val::Num(n)) => format!("%!{v}(float64={})", go_g(*n, None)),
            (v, Val::Str(s)) => format!("%!{v}(string={s})"),
            (v, a) => format!("%!{v}({})", a.print()),
        };
        let numeric = matches!(arg, Val::Num(_) | Val::Int(_)) && "dfFeg".contains(verb);
        let body = if numeric && !body.starts_with('-') && (plus || space) {
            format!("{}{body}", if plus { '+' } else { ' ' })
        } else {
            body
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len >= w {
            out.push_str(&body);
        } else if minus {
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', w - len));
        } else if zero && numeric {
            let (sign, digits) = match body.strip_prefix(['-', '+', ' ']) {
                Some(d) => (&body[..1], d),
                None => ("", body.as_str()),
            };
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', w - len));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', w - len));
            out.push_str(&body);
        }
    }
    if args.next().is_some() {
        out.push_str("%!(EXTRA)");
    }
    out
}

fn non_finite(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

fn go_fixed(v: f64, prec: usize) -> String {
    non_finite(v).unwrap_or_else(|| format!("{v:.prec$}"))
}

/// Go's `%.<prec>e`, which is also Prometheus' `FormatFloat(v, 'e', prec, 64)`.
pub fn go_exp(v: f64, prec: usize) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    let s = format!("{v:.prec$e}");
    fix_exponent(&s)
}

/// Rust writes `1.5e3`, Go `1.5e+03`.
fn fix_exponent(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s.to_string(),
    }
}

/// Go's `%g` with `prec` significant digits, or with `None` Go's `%v` for a float64: the
/// shortest representation, in exponent form below 1e-4 and from 1e+06 up.
pub fn go_g(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    let neg = v.is_sign_negative();
    let a = v.abs();
    let s = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, a),
        None => format!("{a:e}"),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| *c != '.').collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let eprec = prec.map_or(6, |p| p.max(1) as i32);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else {
        let dp = exp + 1;
        let nd = digits.len() as i32;
        if dp <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-dp) as usize));
            out.push_str(&digits);
        } else if dp >= nd {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (dp - nd) as usize));
        } else {
            out.push_str(&digits[..dp as usize]);
            out.push('.');
            out.push_str(&digits[dp as usize..]);
        }
    }
    out
}

const SI_UP: [&str; 8] = ["k", "M", "G", "T", "P", "E", "Z", "Y"];
const SI_DOWN: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

/// Prometheus `humanize`.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in SI_UP {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in SI_DOWN {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(v, Some(4)))
}

/// Prometheus `humanize1024`.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return go_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g(v, Some(4)))
}

/// Prometheus `humanizeDuration`.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", go_g(v, Some(4)))
        };
    }
    let mut prefix = "";
    for p in SI_DOWN {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, Some(4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(t: &str, value: f64) -> String {
        let data = Data {
            labels: Labels::from_pairs([("broker", "edge")]),
            value,
            ..Data::default()
        };
        Template::parse(t)
            .expect("parse")
            .expand(&data)
            .expect("expand")
    }

    #[test]
    fn ints_and_floats_are_different_kinds_as_in_go() {
        let data = Data {
            value: 150.0,
            ..Data::default()
        };
        let run = |t: &str| Template::parse(t).expect("parse").expand(&data);
        // $value is a float64; `100` is an int constant: Go refuses to compare them
        assert_eq!(
            run("{{ if gt $value 100.0 }}big{{ end }}"),
            Ok("big".into())
        );
        assert_eq!(
            run("{{ if gt $value 100 }}big{{ end }}").map_err(|e| e.go("__alert_X")),
            Err("error executing template __alert_X: template: __alert_X:1:118: executing \"__alert_X\" at <gt $value 100>: error calling gt: incompatible types for comparison".into())
        );
        assert_eq!(run("{{ if lt 1 2 }}yes{{ end }}"), Ok("yes".into()));
        // %d is for ints: a float64 gets Go's bad-verb form, an int its digits
        assert_eq!(
            run("{{ printf \"%d\" $value }}"),
            Ok("%!d(float64=150)".into())
        );
        assert_eq!(
            run("{{ printf \"%d|%v|%f\" 7 7 7 }}"),
            Ok("7|7|%!f(int=7)".into())
        );
        // functions that take numbers take ints too (Prometheus converts)
        assert_eq!(run("{{ humanize 1500 }}"), Ok("1.5k".into()));
    }

    #[test]
    fn go_number_formats() {
        // Values checked against Go 1.19's fmt.
        for (v, want) in [
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1e-5, "1e-05"),
            (-2.5, "-2.5"),
            (0.0, "0"),
        ] {
            assert_eq!(go_g(v, None), want, "{v}");
        }
        assert_eq!(go_g(12345.0, Some(4)), "1.234e+04");
        assert_eq!(go_g(100.0, Some(4)), "100");
        assert_eq!(go_g(0.00012345, Some(4)), "0.0001234");
        assert_eq!(go_exp(1234.5, 2), "1.23e+03");
    }

    #[test]
    fn prometheus_humanizers() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.00123), "1.23m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize_duration(480.0), "8m 0s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_duration(1.5), "1.5s");
    }

    #[test]
    fn pipelines_and_conditionals() {
        assert_eq!(
            expand(
                "{{ $labels.broker }} at {{ $value | humanizePercentage }}",
                0.8123
            ),
            "edge at 81.23%"
        );
        assert_eq!(
            expand(
                r#"{{ printf "%.0f" $value }}/{{ $value | printf "%5.1f" }}"#,
                42.25
            ),
            "42/ 42.2"
        );
        assert_eq!(
            expand("{{ if gt $value 1.0 }}big{{ else }}small{{ end }}", 2.0),
            "big"
        );
        assert_eq!(expand("{{- .Labels.broker | toUpper -}} !", 0.0), "EDGE!");
        assert_eq!(
            expand("{{ $labels.missing }}|{{ title \"hello world\" }}", 0.0),
            "|Hello World"
        );
        assert_eq!(expand("{{ $x := 3.0 }}{{ $x }}", 0.0), "3");
    }

    #[test]
    fn unsupported_actions_fail_at_parse() {
        assert!(Template::parse("{{ range $labels }}x{{ end }}").is_err());
        assert!(Template::parse("{{ query \"up\" }}").is_err());
        assert!(Template::parse("{{ if 1.0 }}").is_err());
    }
}
