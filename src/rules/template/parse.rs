//! Template text to nodes: the part of Go's `text/template/parse` Prometheus rule files use.
//! Actions and functions outside that part are refused here, when the rule file loads.

use super::exec::Val;

/// Where a node is, for error messages as Go's `text/template` writes them: line and column
/// (a byte offset, from 0) in the text Prometheus expands — the template behind its variable
/// definitions, [`DEFS_LEN`] bytes on line 1 — and the node as Go prints it.
#[derive(Clone, Debug, Default)]
pub(super) struct At {
    pub(super) line: usize,
    pub(super) col: usize,
    pub(super) node: String,
}

/// Prometheus expands `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}`
/// `{{$externalURL := .ExternalURL}}{{$value := .Value}}` + the template: 112 bytes before
/// the template's first line.
pub(super) const DEFS_LEN: usize = 112;

#[derive(Clone, Debug)]
pub(super) enum Arg {
    Lit(Val),
    /// `$name.field…` (name without `$`) or `.Field…` (name empty).
    Var(String, Vec<String>, At),
    Pipe(Box<Pipeline>),
}

#[derive(Clone, Debug)]
pub(super) struct Command {
    pub(super) func: Option<String>,
    pub(super) args: Vec<Arg>,
    pub(super) at: At,
}

#[derive(Clone, Debug)]
pub(super) struct Pipeline {
    pub(super) decl: Option<String>,
    pub(super) cmds: Vec<Command>,
}

impl Pipeline {
    /// Go's `PipeNode.String()`.
    pub(super) fn go_string(&self) -> String {
        let cmds: Vec<&str> = self.cmds.iter().map(|c| c.at.node.as_str()).collect();
        match &self.decl {
            Some(d) => format!("${d} := {}", cmds.join(" | ")),
            None => cmds.join(" | "),
        }
    }
}

/// An error while expanding: what went wrong, at which node.
#[derive(Clone, Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
}

/// The functions a template may call (Prometheus' and Go's builtins we implement).
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

/// The nodes of template `text`, or what is wrong with it (a construct we do not support is
/// named).
pub(super) fn parse(text: &str) -> Result<Vec<Node>, String> {
    let tokens = split(text)?;
    let mut pos = 0;
    let (nodes, end) = parse_nodes(&tokens, &mut pos, text)?;
    if let Some((e, _)) = end {
        return Err(format!("unexpected {{{{{e}}}}}"));
    }
    Ok(nodes)
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
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
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
#[cfg(test)]
mod tests {
    use crate::rules::template::Template;

    #[test]
    fn unsupported_actions_fail_at_parse() {
        assert!(Template::parse("{{ range $labels }}x{{ end }}").is_err());
        assert!(Template::parse("{{ query \"up\" }}").is_err());
        assert!(Template::parse("{{ if 1.0 }}").is_err());
    }
}
