//! Expanding parsed nodes against an alert's [`Data`] (Go's `text/template` `exec.go`),
//! with Prometheus' template functions.

use super::Data;
use super::format::{go_g, go_print, humanize, humanize_duration, humanize1024, printf};
use super::parse::{Arg, At, Node, Pipeline};
use crate::rules::labels::Labels;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub(super) enum Val {
    Str(String),
    Num(f64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    /// An integer literal (`1`): Go's int, which comparisons never mix with a float64.
    Int(i64),
}

impl Val {
    /// The Go type a template value has, for error messages.
    pub(super) fn go_type(&self) -> &'static str {
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

    pub(super) fn print(&self) -> String {
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

pub(super) fn run(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::template::Template;

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
}
