//! PromQL parse errors worded as Prometheus 2.42's (`promtool check rules`, `promtool test
//! rules`), for the expressions `promql-parser` refuses.
//!
//! `promql-parser` gives its errors as plain strings, without positions and in other words
//! than Prometheus. [`describe`] reads the expression with its own lexer and a
//! recursive-descent checker written to report the *first* error the way Prometheus 2.42's
//! generated (yacc) parser does, then, if the syntax is sound, the type checks Prometheus runs
//! after parsing (`checkAST`). Only the first error is reported, as Prometheus' `ParseErrors`
//! prints only its first one. The messages were learnt from real `promtool` 2.42 runs (the
//! corpus `tests/fixtures/rules/parse-errors/corpus.yml` is the ground truth); no Prometheus
//! code is copied.
//!
//! The form is Prometheus' `<line>:<col>: parse error: <message>`, where `line` counts from 1
//! and `col` is 1 + the byte offset from the start of the line (Prometheus counts bytes, not
//! characters).
//!
//! [`super::subset::parse`] asks it first, for every expression: what 2.42 refuses is refused
//! (also what `promql-parser` would accept from later Prometheus versions); what it lets
//! through goes on to `promql-parser`, whose AST alone is evaluated.
//! `tests/fixtures/rules/parse-errors/valid.yml` holds the expressions promtool accepts that
//! it must let through.

use std::fmt::Write as _;

/// The first parse error of `text` as promtool 2.42 words it,
/// `"<line>:<col>: parse error: <message>"`, or `None` when this checker finds no error.
pub fn describe(text: &str) -> Option<String> {
    let toks = lex(text);
    let mut p = Parser {
        toks,
        i: 0,
        agg_depth: 0,
        depth: 0,
    };
    let err = match p.start() {
        Err(e) if e.pos == TOO_DEEP => return None,
        Err(e) => e,
        Ok(node) => {
            let mut errs = Vec::new();
            check(&node, &mut errs);
            errs.into_iter().next()?
        }
    };
    Some(render(text, &err))
}

/// An error at a byte offset of the expression.
#[derive(Debug)]
struct ParseErr {
    pos: usize,
    msg: String,
}

/// `text` with every raw string (`` `…` ``) rewritten as the double-quoted string of the same
/// value, for `promql-parser`: 0.11 applies escape sequences inside raw strings and refuses
/// `` `v\d+` `` ("unknown escape sequence 'd'"), which Prometheus 2.42 reads as the five
/// characters `v\d+` (a raw string has no escapes: Go's raw string literal, lex.go
/// `lexRawString`). Only for a text [`describe`] accepted (its lexer finds the strings);
/// borrowed unchanged when it has none.
pub fn raw_strings_quoted(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('`') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut at = 0;
    for t in lex(text) {
        if matches!(t.kind, Kind::Str) && t.val.starts_with('`') {
            out.push_str(&text[at..t.pos]);
            // A raw string holds no backquote: its value is what lies between the two.
            out.push_str(&go_quote(t.val.trim_matches('`')));
            at = t.pos + t.val.len();
        }
    }
    out.push_str(&text[at..]);
    std::borrow::Cow::Owned(out)
}

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, ParseErr> {
    Err(ParseErr {
        pos,
        msg: msg.into(),
    })
}

fn render(text: &str, e: &ParseErr) -> String {
    if e.pos > text.len() {
        return format!("invalid position: parse error: {}", e.msg);
    }
    let mut line = 1;
    let mut last_break: isize = -1;
    for (i, b) in text.as_bytes()[..e.pos].iter().enumerate() {
        if *b == b'\n' {
            line += 1;
            last_break = i as isize;
        }
    }
    let col = e.pos as isize - last_break;
    format!("{line}:{col}: parse error: {}", e.msg)
}

// ---------------------------------------------------------------------------------------
// Go formatting helpers (`%q` of strings and runes, `%#U`, `%f`).

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `%q` of a rune; `None` is Go's `eof` (-1), printed as the replacement character.
fn go_quote_rune(c: Option<char>) -> String {
    let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() => {
            if (c as u32) < 0x10000 {
                let _ = write!(out, "\\u{:04x}", c as u32);
            } else {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
        c => out.push(c),
    }
}

/// Go's `%#U`: `U+0071 'q'`.
fn go_unicode(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

/// Go's `%f` of a float64.
fn go_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:.6}")
    }
}

// ---------------------------------------------------------------------------------------
// Lexer (Prometheus 2.42's states: statements, inside braces, after `[`).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eqlc,
    Neq,
    Lte,
    Lss,
    Gte,
    Gtr,
    EqlRegex,
    NeqRegex,
    And,
    Or,
    Unless,
    Atan2,
    At,
}

impl Op {
    /// Binary precedence, 1 (`or`) to 6 (`^`); `None` for what is not a binary operator.
    fn prec(self) -> Option<u8> {
        Some(match self {
            Op::Or => 1,
            Op::And | Op::Unless => 2,
            Op::Eqlc | Op::Neq | Op::Lte | Op::Lss | Op::Gte | Op::Gtr => 3,
            Op::Add | Op::Sub => 4,
            Op::Mul | Op::Div | Op::Mod | Op::Atan2 => 5,
            Op::Pow => 6,
            Op::EqlRegex | Op::NeqRegex | Op::At => return None,
        })
    }
    fn is_comparison(self) -> bool {
        matches!(
            self,
            Op::Eqlc | Op::Neq | Op::Lte | Op::Lss | Op::Gte | Op::Gtr
        )
    }
    fn is_set(self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Unless)
    }
    fn name(self) -> &'static str {
        match self {
            Op::And => "and",
            Op::Or => "or",
            Op::Unless => "unless",
            _ => "",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kw {
    Bool,
    By,
    GroupLeft,
    GroupRight,
    Ignoring,
    Offset,
    On,
    Without,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Eof,
    Error(String),
    Comma,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Colon,
    Eql,
    Op(Op),
    Aggr,
    Kw(Kw),
    Start,
    End,
    Ident,
    MetricIdent,
    Number,
    Duration,
    Str,
}

#[derive(Clone, Debug)]
struct Tok {
    kind: Kind,
    pos: usize,
    val: String,
}

impl Tok {
    /// Prometheus' `Item.String()` for what is neither keyword, operator nor identifier:
    /// quoted, cut to 10 characters (with `...`) when longer than 10 bytes.
    fn plain(&self) -> String {
        if self.val.len() > 10 {
            let cut: String = self.val.chars().take(10).collect();
            format!("{}...", go_quote(&cut))
        } else {
            go_quote(&self.val)
        }
    }

    /// Prometheus' `Item.desc()`: how an unexpected token is named.
    fn desc(&self) -> String {
        match &self.kind {
            Kind::Eof => "end of input".into(),
            Kind::Error(m) => m.clone(),
            Kind::Ident => format!("identifier {}", go_quote(&self.val)),
            Kind::MetricIdent => format!("metric identifier {}", go_quote(&self.val)),
            Kind::Number => format!("number {}", self.plain()),
            Kind::Duration => format!("duration {}", self.plain()),
            Kind::Str => format!("string {}", self.plain()),
            // `@` has no entry in 2.42's token names: its type prints as a number.
            Kind::Op(Op::At) => format!("\"<Item 57385>\" <op:{}>", self.val),
            Kind::Op(_) => format!("<op:{}>", self.val),
            Kind::Aggr => format!("<aggr:{}>", self.val),
            Kind::Kw(_) => format!("<{}>", self.val),
            _ => self.plain(),
        }
    }

    fn is(&self, k: &Kind) -> bool {
        &self.kind == k
    }
}

const AGGREGATORS: &[&str] = &[
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "count_values",
    "quantile",
];

fn keyword(word: &str) -> Option<Kind> {
    let lower = word.to_ascii_lowercase();
    Some(match lower.as_str() {
        "and" => Kind::Op(Op::And),
        "or" => Kind::Op(Op::Or),
        "unless" => Kind::Op(Op::Unless),
        "atan2" => Kind::Op(Op::Atan2),
        "offset" => Kind::Kw(Kw::Offset),
        "by" => Kind::Kw(Kw::By),
        "without" => Kind::Kw(Kw::Without),
        "on" => Kind::Kw(Kw::On),
        "ignoring" => Kind::Kw(Kw::Ignoring),
        "group_left" => Kind::Kw(Kw::GroupLeft),
        "group_right" => Kind::Kw(Kw::GroupRight),
        "bool" => Kind::Kw(Kw::Bool),
        "start" => Kind::Start,
        "end" => Kind::End,
        "inf" | "nan" => Kind::Number,
        l if AGGREGATORS.contains(&l) => Kind::Aggr,
        _ => return None,
    })
}

fn is_alpha(c: Option<char>) -> bool {
    matches!(c, Some(c) if c == '_' || c.is_ascii_alphabetic())
}
fn is_digit(c: Option<char>) -> bool {
    matches!(c, Some(c) if c.is_ascii_digit())
}
fn is_alnum(c: Option<char>) -> bool {
    is_alpha(c) || is_digit(c)
}
fn is_space(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t' | '\n' | '\r'))
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    width: usize,
    paren_depth: i64,
    brace_open: bool,
    bracket_open: bool,
    got_colon: bool,
    toks: Vec<Tok>,
}

/// All tokens of `input`, comments dropped, ending with `Eof` or an `Error` token.
fn lex(input: &str) -> Vec<Tok> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        width: 0,
        paren_depth: 0,
        brace_open: false,
        bracket_open: false,
        got_colon: false,
        toks: Vec::new(),
    };
    // Bounded: every step consumes input or ends the scan.
    while !matches!(
        l.toks.last().map(|t| &t.kind),
        Some(Kind::Eof | Kind::Error(_))
    ) {
        if l.brace_open {
            l.inside_braces();
        } else {
            l.statements();
        }
    }
    l.toks
}

impl Lexer<'_> {
    fn next(&mut self) -> Option<char> {
        match self.input[self.pos..].chars().next() {
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
            None => {
                self.width = 0;
                None
            }
        }
    }
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }
    fn backup(&mut self) {
        self.pos -= self.width;
        self.width = 0;
    }
    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.next();
                true
            }
            _ => false,
        }
    }
    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }
    fn emit(&mut self, kind: Kind) {
        self.toks.push(Tok {
            kind,
            pos: self.start,
            val: self.input[self.start..self.pos].to_string(),
        });
        self.start = self.pos;
    }
    fn error(&mut self, msg: String) {
        self.toks.push(Tok {
            kind: Kind::Error(msg),
            pos: self.start,
            val: String::new(),
        });
    }
    fn skip_spaces(&mut self) {
        while is_space(self.peek()) {
            self.next();
        }
        self.start = self.pos;
    }
    fn comment(&mut self) -> bool {
        if !self.input[self.pos..].starts_with('#') {
            return false;
        }
        while !matches!(self.peek(), None | Some('\n' | '\r')) {
            self.next();
        }
        self.start = self.pos;
        true
    }

    fn statements(&mut self) {
        if self.comment() {
            return;
        }
        let r = self.next();
        match r {
            None => {
                if self.paren_depth != 0 {
                    self.error("unclosed left parenthesis".into());
                } else if self.bracket_open {
                    self.error("unclosed left bracket".into());
                } else {
                    self.emit(Kind::Eof);
                }
            }
            Some(',') => self.emit(Kind::Comma),
            Some(' ' | '\t' | '\n' | '\r') => self.skip_spaces(),
            Some('*') => self.emit(Kind::Op(Op::Mul)),
            Some('/') => self.emit(Kind::Op(Op::Div)),
            Some('%') => self.emit(Kind::Op(Op::Mod)),
            Some('+') => self.emit(Kind::Op(Op::Add)),
            Some('-') => self.emit(Kind::Op(Op::Sub)),
            Some('^') => self.emit(Kind::Op(Op::Pow)),
            Some('=') => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Kind::Op(Op::Eqlc));
                }
                Some('~') => self.error(format!(
                    "unexpected character after '=': {}",
                    go_quote_rune(Some('~'))
                )),
                _ => self.emit(Kind::Eql),
            },
            Some('!') => {
                let t = self.next();
                if t == Some('=') {
                    self.emit(Kind::Op(Op::Neq));
                } else {
                    self.error(format!(
                        "unexpected character after '!': {}",
                        go_quote_rune(t)
                    ));
                }
            }
            Some('<') => {
                if self.accept("=") {
                    self.emit(Kind::Op(Op::Lte));
                } else {
                    self.emit(Kind::Op(Op::Lss));
                }
            }
            Some('>') => {
                if self.accept("=") {
                    self.emit(Kind::Op(Op::Gte));
                } else {
                    self.emit(Kind::Op(Op::Gtr));
                }
            }
            Some(c) if c.is_ascii_digit() || (c == '.' && is_digit(self.peek())) => {
                self.backup();
                self.number_or_duration();
            }
            Some(q @ ('"' | '\'')) => self.string(q),
            Some('`') => self.raw_string(),
            Some(c) if c == ':' || is_alpha(Some(c)) => {
                if !self.bracket_open {
                    self.backup();
                    self.keyword_or_identifier();
                } else if self.got_colon {
                    self.error(format!("unexpected colon {}", go_quote_rune(Some(c))));
                } else {
                    self.emit(Kind::Colon);
                    self.got_colon = true;
                }
            }
            Some('(') => {
                self.emit(Kind::LParen);
                self.paren_depth += 1;
            }
            Some(')') => {
                self.emit(Kind::RParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    // Prometheus overwrites the `)` just emitted.
                    self.toks.pop();
                    self.error(format!(
                        "unexpected right parenthesis {}",
                        go_quote_rune(Some(')'))
                    ));
                }
            }
            Some('{') => {
                self.emit(Kind::LBrace);
                self.brace_open = true;
            }
            Some('[') => {
                if self.bracket_open {
                    self.error(format!(
                        "unexpected left bracket {}",
                        go_quote_rune(Some('['))
                    ));
                    return;
                }
                self.got_colon = false;
                self.emit(Kind::LBracket);
                self.skip_spaces();
                self.bracket_open = true;
                self.duration();
            }
            Some(']') => {
                if !self.bracket_open {
                    self.error(format!(
                        "unexpected right bracket {}",
                        go_quote_rune(Some(']'))
                    ));
                    return;
                }
                self.emit(Kind::RBracket);
                self.bracket_open = false;
            }
            Some('@') => self.emit(Kind::Op(Op::At)),
            Some(c) => self.error(format!("unexpected character: {}", go_quote_rune(Some(c)))),
        }
    }

    fn inside_braces(&mut self) {
        if self.comment() {
            return;
        }
        match self.next() {
            None => self.error("unexpected end of input inside braces".into()),
            Some(' ' | '\t' | '\n' | '\r') => self.skip_spaces(),
            Some(c) if is_alpha(Some(c)) => {
                while is_alnum(self.peek()) {
                    self.next();
                }
                self.emit(Kind::Ident);
            }
            Some(',') => self.emit(Kind::Comma),
            Some(q @ ('"' | '\'')) => self.string(q),
            Some('`') => self.raw_string(),
            Some('=') => {
                if self.accept("~") {
                    self.emit(Kind::Op(Op::EqlRegex));
                } else {
                    self.emit(Kind::Eql);
                }
            }
            Some('!') => match self.next() {
                Some('~') => self.emit(Kind::Op(Op::NeqRegex)),
                Some('=') => self.emit(Kind::Op(Op::Neq)),
                nr => self.error(format!(
                    "unexpected character after '!' inside braces: {}",
                    go_quote_rune(nr)
                )),
            },
            Some('{') => self.error(format!(
                "unexpected left brace {}",
                go_quote_rune(Some('{'))
            )),
            Some('}') => {
                self.emit(Kind::RBrace);
                self.brace_open = false;
            }
            c => self.error(format!(
                "unexpected character inside braces: {}",
                go_quote_rune(c)
            )),
        }
    }

    /// After `[`: a duration, or an error.
    fn duration(&mut self) {
        if self.scan_number() {
            self.error("missing unit character in duration".into());
            return;
        }
        if !self.remaining_duration() {
            let seen = self.input[self.start..self.pos].to_string();
            self.error(format!("bad duration syntax: {}", go_quote(&seen)));
            return;
        }
        self.backup();
        self.emit(Kind::Duration);
    }

    fn number_or_duration(&mut self) {
        if self.scan_number() {
            self.emit(Kind::Number);
            return;
        }
        if self.remaining_duration() {
            self.backup();
            self.emit(Kind::Duration);
            return;
        }
        let seen = self.input[self.start..self.pos].to_string();
        self.error(format!(
            "bad number or duration syntax: {}",
            go_quote(&seen)
        ));
    }

    /// Units after the digits of a duration; leaves one character read too many when true.
    fn remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        self.accept("s");
        while self.accept("0123456789") {
            self.accept_run("0123456789");
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        let c = self.next();
        !is_alnum(c)
    }

    fn scan_number(&mut self) -> bool {
        let mut digits = "0123456789";
        if self.accept("0") && self.accept("xX") {
            digits = "0123456789abcdefABCDEF";
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789");
        }
        !is_alnum(self.peek())
    }

    fn keyword_or_identifier(&mut self) {
        while matches!(self.peek(), Some(c) if c == ':' || is_alnum(Some(c))) {
            self.next();
        }
        let word = &self.input[self.start..self.pos];
        let kind = match keyword(word) {
            Some(k) => k,
            None if word.contains(':') => Kind::MetricIdent,
            None => Kind::Ident,
        };
        self.emit(kind);
    }

    fn string(&mut self, quote: char) {
        loop {
            match self.next() {
                Some('\\') => {
                    if let Some(e) = self.escape(quote) {
                        self.error(e);
                        return;
                    }
                }
                None | Some('\n') => {
                    self.error("unterminated quoted string".into());
                    return;
                }
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::Str);
    }

    fn escape(&mut self, quote: char) -> Option<String> {
        let mut ch = self.next();
        let (mut n, base, max) = match ch {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\') => return None,
            Some(c) if c == quote => return None,
            Some('0'..='7') => (3, 8, 255),
            Some('x') => {
                ch = self.next();
                (2, 16, 255)
            }
            Some('u') => {
                ch = self.next();
                (4, 16, 0x10FFFF)
            }
            Some('U') => {
                ch = self.next();
                (8, 16, 0x10FFFF)
            }
            None => return Some("escape sequence not terminated".into()),
            Some(c) => return Some(format!("unknown escape sequence {}", go_unicode(c))),
        };
        let mut x: u32 = 0;
        while n > 0 {
            let d = ch.and_then(|c| c.to_digit(16)).unwrap_or(16);
            if d >= base {
                return Some(match ch {
                    None => "escape sequence not terminated".into(),
                    Some(c) => format!("illegal character {} in escape sequence", go_unicode(c)),
                });
            }
            x = x.wrapping_mul(base).wrapping_add(d);
            n -= 1;
            if n > 0 {
                ch = self.next();
            }
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            return Some("escape sequence is an invalid Unicode code point".into());
        }
        None
    }

    fn raw_string(&mut self) {
        loop {
            match self.next() {
                None => {
                    self.error("unterminated raw string".into());
                    return;
                }
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::Str);
    }
}

// ---------------------------------------------------------------------------------------
// Syntax tree (only what the checks need).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Scalar,
    Vector,
    Matrix,
    Str,
}

impl Type {
    /// Prometheus' `DocumentedType`.
    fn documented(self) -> &'static str {
        match self {
            Type::Scalar => "scalar",
            Type::Vector => "instant vector",
            Type::Matrix => "range vector",
            Type::Str => "string",
        }
    }
    /// Prometheus' `ValueType` string.
    fn raw(self) -> &'static str {
        match self {
            Type::Scalar => "scalar",
            Type::Vector => "vector",
            Type::Matrix => "matrix",
            Type::Str => "string",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
}

/// What follows a binary operator: `bool`, `on`/`ignoring (…)`, `group_left`/`group_right (…)`.
#[derive(Debug)]
struct Modifier {
    bool_: bool,
    card: Card,
    on: bool,
    matching: Vec<String>,
    include: Vec<String>,
}

#[derive(Debug)]
enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

#[derive(Debug)]
enum Node {
    Num(usize),
    Str(usize),
    Vs {
        pos: usize,
        name: Option<String>,
        matchers: Vec<(String, MatchOp, String)>,
        offset: bool,
        /// `@ <number>` (`Some(true)`) or `@ start()`/`@ end()` (`Some(false)`).
        at: Option<bool>,
    },
    Matrix {
        pos: usize,
        vs: Box<Node>,
    },
    Subquery {
        expr: Box<Node>,
        offset: bool,
        at: Option<bool>,
    },
    Paren(usize, Box<Node>),
    Unary(usize, Box<Node>),
    Binary {
        lhs: Box<Node>,
        rhs: Box<Node>,
        op: Op,
        op_pos: usize,
        m: Modifier,
    },
    Call {
        pos: usize,
        name: String,
        args: Vec<Node>,
    },
    Agg {
        pos: usize,
        op: String,
        param: Option<Box<Node>>,
        expr: Box<Node>,
    },
}

impl Node {
    fn pos(&self) -> usize {
        match self {
            Node::Num(p) | Node::Str(p) | Node::Paren(p, _) | Node::Unary(p, _) => *p,
            Node::Vs { pos, .. }
            | Node::Matrix { pos, .. }
            | Node::Call { pos, .. }
            | Node::Agg { pos, .. } => *pos,
            Node::Subquery { expr, .. } => expr.pos(),
            Node::Binary { lhs, .. } => lhs.pos(),
        }
    }
    fn typ(&self) -> Type {
        match self {
            Node::Num(_) => Type::Scalar,
            Node::Str(_) => Type::Str,
            Node::Vs { .. } | Node::Agg { .. } => Type::Vector,
            Node::Matrix { .. } | Node::Subquery { .. } => Type::Matrix,
            Node::Paren(_, e) | Node::Unary(_, e) => e.typ(),
            Node::Binary { lhs, rhs, .. } => {
                if lhs.typ() == Type::Scalar && rhs.typ() == Type::Scalar {
                    Type::Scalar
                } else {
                    Type::Vector
                }
            }
            Node::Call { name, .. } => function(name).map_or(Type::Vector, |f| f.1),
        }
    }
}

use Type::{Matrix as M, Scalar as S, Str as T, Vector as V};

/// Prometheus 2.42's functions: argument types, return type, variadic count (0: fixed,
/// n > 0: up to n optional trailing arguments, -1: any number).
fn function(name: &str) -> Option<(&'static [Type], Type, i32)> {
    Some(match name {
        "time" | "pi" => (&[], S, 0),
        "vector" => (&[S], V, 0),
        "scalar" => (&[V], S, 0),
        "abs" | "absent" | "acos" | "acosh" | "asin" | "asinh" | "atan" | "atanh" | "ceil"
        | "cos" | "cosh" | "deg" | "exp" | "floor" | "histogram_count" | "histogram_sum" | "ln"
        | "log10" | "log2" | "rad" | "sgn" | "sin" | "sinh" | "sort" | "sort_desc" | "sqrt"
        | "tan" | "tanh" | "timestamp" => (&[V], V, 0),
        "absent_over_time" | "avg_over_time" | "changes" | "count_over_time" | "delta"
        | "deriv" | "idelta" | "increase" | "irate" | "last_over_time" | "max_over_time"
        | "min_over_time" | "present_over_time" | "rate" | "resets" | "stddev_over_time"
        | "stdvar_over_time" | "sum_over_time" => (&[M], V, 0),
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => (&[V], V, 1),
        "round" => (&[V, S], V, 1),
        "clamp" => (&[V, S, S], V, 0),
        "clamp_max" | "clamp_min" => (&[V, S], V, 0),
        "histogram_quantile" => (&[S, V], V, 0),
        "histogram_fraction" => (&[S, S, V], V, 0),
        "holt_winters" => (&[M, S, S], V, 0),
        "label_join" => (&[V, T, T, T], V, -1),
        "label_replace" => (&[V, T, T, T, T], V, 0),
        "predict_linear" => (&[M, S], V, 0),
        "quantile_over_time" => (&[S, M], V, 0),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Parser: the first error, as the yacc parser (with its `error` rules) reports it.

struct Parser {
    toks: Vec<Tok>,
    i: usize,
    /// How many aggregations we are inside of: their `error` rule names the context
    /// ("in aggregation") of a token no deeper rule expected.
    agg_depth: usize,
    /// Nesting of expressions being parsed, bounded by [`MAX_DEPTH`].
    depth: usize,
}

/// Deeper nesting than this is left to `promql-parser` (`describe` gives `None`): the
/// checker recurses once per level, and rule loading may run on a thread with a small stack.
const MAX_DEPTH: usize = 200;
/// The position that marks "too deeply nested" in an [`ParseErr`].
const TOO_DEEP: usize = usize::MAX;

type R<T> = Result<T, ParseErr>;

impl Parser {
    /// The next token; a lexer error surfaces as soon as the parser looks at it.
    fn peek(&self) -> R<&Tok> {
        let t = &self.toks[self.i.min(self.toks.len() - 1)];
        if let Kind::Error(m) = &t.kind {
            return err(t.pos, m.clone());
        }
        Ok(t)
    }
    fn bump(&mut self) -> R<Tok> {
        let t = self.peek()?.clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        Ok(t)
    }
    fn unexpected<T>(&self, t: &Tok, context: &str, expected: &str) -> R<T> {
        let mut m = format!("unexpected {}", t.desc());
        if !context.is_empty() {
            let _ = write!(m, " in {context}");
        }
        if !expected.is_empty() {
            let _ = write!(m, ", expected {expected}");
        }
        err(t.pos, m)
    }
    /// A token no specific rule expected: named in the innermost aggregation, if any.
    fn generic<T>(&self, t: &Tok) -> R<T> {
        let ctx = if self.agg_depth > 0 {
            "aggregation"
        } else {
            ""
        };
        self.unexpected(t, ctx, "")
    }

    fn start(&mut self) -> R<Node> {
        if self.peek()?.is(&Kind::Eof) {
            return err(0, "no expression found in input");
        }
        let e = self.expr(0)?;
        let t = self.peek()?;
        if !t.is(&Kind::Eof) {
            return self.generic(t);
        }
        Ok(e)
    }

    fn expr(&mut self, min_prec: u8) -> R<Node> {
        if self.depth >= MAX_DEPTH {
            return err(TOO_DEEP, "");
        }
        self.depth += 1;
        let e = self.expr_inner(min_prec);
        self.depth -= 1;
        e
    }

    fn expr_inner(&mut self, min_prec: u8) -> R<Node> {
        let mut lhs = self.unary()?;
        // Each operator nests the tree one level deeper (the checks recurse through it).
        let outer = self.depth;
        let e = self.binary_chain(&mut lhs, min_prec);
        self.depth = outer;
        e.map(|()| lhs)
    }

    fn binary_chain(&mut self, lhs: &mut Node, min_prec: u8) -> R<()> {
        loop {
            let t = self.peek()?;
            let (op, prec) = match t.kind {
                Kind::Op(op) => match op.prec() {
                    Some(p) if p >= min_prec => (op, p),
                    _ => break,
                },
                _ => break,
            };
            let op_pos = t.pos;
            self.depth += 1;
            if self.depth >= MAX_DEPTH {
                return err(TOO_DEEP, "");
            }
            self.bump()?;
            let m = self.bin_modifier()?;
            let next = if op == Op::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next)?;
            let left = std::mem::replace(lhs, Node::Num(0));
            *lhs = Node::Binary {
                lhs: Box::new(left),
                rhs: Box::new(rhs),
                op,
                op_pos,
                m,
            };
        }
        Ok(())
    }

    fn bin_modifier(&mut self) -> R<Modifier> {
        let mut bool_ = false;
        if self.peek()?.is(&Kind::Kw(Kw::Bool)) {
            self.bump()?;
            bool_ = true;
        }
        let (mut on, mut matching, mut include, mut card) =
            (false, Vec::new(), Vec::new(), Card::OneToOne);
        let t = self.peek()?;
        if t.is(&Kind::Kw(Kw::On)) || t.is(&Kind::Kw(Kw::Ignoring)) {
            on = t.is(&Kind::Kw(Kw::On));
            self.bump()?;
            matching = self.grouping_labels()?;
            let t = self.peek()?;
            if t.is(&Kind::Kw(Kw::GroupLeft)) || t.is(&Kind::Kw(Kw::GroupRight)) {
                card = if t.is(&Kind::Kw(Kw::GroupLeft)) {
                    Card::ManyToOne
                } else {
                    Card::OneToMany
                };
                self.bump()?;
                // Optional labels: what cannot start the right-hand side must be their `(`.
                let n = self.peek()?;
                if n.is(&Kind::LParen) || !Self::starts_expr(n) {
                    include = self.grouping_labels()?;
                }
            }
        }
        Ok(Modifier {
            bool_,
            card,
            on,
            matching,
            include,
        })
    }

    /// `( label, … )` after `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    fn grouping_labels(&mut self) -> R<Vec<String>> {
        let t = self.peek()?;
        if !t.is(&Kind::LParen) {
            return self.unexpected(t, "grouping opts", "\"(\"");
        }
        self.bump()?;
        let mut labels = Vec::new();
        if self.peek()?.is(&Kind::RParen) {
            self.bump()?;
            return Ok(labels);
        }
        loop {
            let t = self.peek()?;
            // 2.42's `maybe_label`: every keyword but `without`.
            let label_like = matches!(
                t.kind,
                Kind::Ident
                    | Kind::MetricIdent
                    | Kind::Kw(
                        Kw::Bool
                            | Kw::By
                            | Kw::GroupLeft
                            | Kw::GroupRight
                            | Kw::Ignoring
                            | Kw::Offset
                            | Kw::On
                    )
                    | Kind::Aggr
                    | Kind::Start
                    | Kind::End
                    | Kind::Op(Op::And | Op::Or | Op::Unless | Op::Atan2)
            );
            if !label_like || t.is(&Kind::MetricIdent) {
                return self.unexpected(t, "grouping opts", "label");
            }
            labels.push(t.val.clone());
            self.bump()?;
            let t = self.peek()?;
            match t.kind {
                Kind::RParen => {
                    self.bump()?;
                    return Ok(labels);
                }
                Kind::Comma => {
                    self.bump()?;
                    if self.peek()?.is(&Kind::RParen) {
                        self.bump()?;
                        return Ok(labels);
                    }
                }
                _ => return self.unexpected(t, "grouping opts", "\",\" or \")\""),
            }
        }
    }

    fn unary(&mut self) -> R<Node> {
        let t = self.peek()?;
        if let Kind::Op(Op::Add | Op::Sub) = t.kind {
            let pos = t.pos;
            self.bump()?;
            // `unary_op expr %prec MUL`: only `^` (and the postfix modifiers) bind tighter.
            let e = self.expr(6)?;
            return Ok(match e {
                Node::Num(_) => Node::Num(pos),
                e => Node::Unary(pos, Box::new(e)),
            });
        }
        let e = self.primary()?;
        self.postfix(e)
    }

    fn starts_expr(t: &Tok) -> bool {
        matches!(
            t.kind,
            Kind::Aggr
                | Kind::Ident
                | Kind::MetricIdent
                | Kind::Kw(Kw::By | Kw::Without | Kw::Offset)
                | Kind::Op(Op::And | Op::Or | Op::Unless | Op::Add | Op::Sub)
                | Kind::Start
                | Kind::End
                | Kind::Number
                | Kind::Str
                | Kind::LParen
                | Kind::LBrace
        )
    }

    fn primary(&mut self) -> R<Node> {
        let t = self.peek()?.clone();
        match t.kind {
            Kind::Aggr => {
                let next = self.toks.get(self.i + 1).map(|n| n.kind.clone());
                if matches!(
                    next,
                    Some(Kind::LParen | Kind::Kw(Kw::By) | Kind::Kw(Kw::Without))
                ) {
                    self.aggregate()
                } else {
                    self.bump()?;
                    self.selector(Some(t))
                }
            }
            Kind::Ident => {
                self.bump()?;
                if self.peek()?.is(&Kind::LParen) {
                    self.call(t)
                } else {
                    self.selector(Some(t))
                }
            }
            Kind::MetricIdent
            | Kind::Kw(Kw::By | Kw::Without | Kw::Offset)
            | Kind::Op(Op::And | Op::Or | Op::Unless)
            | Kind::Start
            | Kind::End => {
                self.bump()?;
                self.selector(Some(t))
            }
            Kind::LBrace => self.selector(None),
            Kind::Number => {
                self.bump()?;
                number(&t.val).map_err(|m| ParseErr { pos: t.pos, msg: m })?;
                Ok(Node::Num(t.pos))
            }
            Kind::Str => {
                self.bump()?;
                Ok(Node::Str(t.pos))
            }
            Kind::LParen => {
                self.bump()?;
                let e = self.expr(0)?;
                let c = self.peek()?;
                if !c.is(&Kind::RParen) {
                    return self.generic(c);
                }
                self.bump()?;
                Ok(Node::Paren(t.pos, Box::new(e)))
            }
            _ => self.generic(&t),
        }
    }

    /// A vector selector: `name`, `name{…}` or `{…}`; `name` already consumed.
    fn selector(&mut self, name: Option<Tok>) -> R<Node> {
        let mut pos = name.as_ref().map(|t| t.pos);
        let mut matchers = Vec::new();
        if self.peek()?.is(&Kind::LBrace) {
            let b = self.bump()?;
            pos.get_or_insert(b.pos);
            matchers = self.matchers()?;
        }
        Ok(Node::Vs {
            pos: pos.unwrap_or(0),
            name: name.map(|t| t.val),
            matchers,
            offset: false,
            at: None,
        })
    }

    /// Label matchers after `{`, through `}`.
    fn matchers(&mut self) -> R<Vec<(String, MatchOp, String)>> {
        let mut out = Vec::new();
        let want_matcher = "identifier or \"}\"";
        loop {
            let t = self.peek()?.clone();
            match t.kind {
                Kind::RBrace => {
                    self.bump()?;
                    return Ok(out);
                }
                Kind::Ident => {}
                _ => return self.unexpected(&t, "label matching", want_matcher),
            }
            self.bump()?;
            let o = self.peek()?;
            let op = match o.kind {
                Kind::Eql => MatchOp::Eq,
                Kind::Op(Op::Neq) => MatchOp::Ne,
                Kind::Op(Op::EqlRegex) => MatchOp::Re,
                Kind::Op(Op::NeqRegex) => MatchOp::Nre,
                _ => return self.unexpected(o, "label matching", "label matching operator"),
            };
            self.bump()?;
            let v = self.peek()?;
            if !v.is(&Kind::Str) {
                return self.unexpected(v, "label matching", "string");
            }
            let value = unquote(&v.val);
            self.bump()?;
            if matches!(op, MatchOp::Re | MatchOp::Nre)
                && let Some(e) = go_regexp_error(&value)
            {
                return err(t.pos, e);
            }
            out.push((t.val.clone(), op, value));
            let n = self.peek()?;
            match n.kind {
                Kind::RBrace => {
                    self.bump()?;
                    return Ok(out);
                }
                Kind::Comma => {
                    self.bump()?;
                }
                _ => return self.unexpected(n, "label matching", "\",\" or \"}\""),
            }
        }
    }

    fn aggregate(&mut self) -> R<Node> {
        let op = self.bump()?;
        self.agg_depth += 1;
        let args = (|| {
            let t = self.peek()?;
            if t.is(&Kind::Kw(Kw::By)) || t.is(&Kind::Kw(Kw::Without)) {
                self.bump()?;
                self.grouping_labels()?;
                let t = self.peek()?;
                if !t.is(&Kind::LParen) {
                    return self.generic(t);
                }
                self.call_body()
            } else {
                let args = self.call_body()?;
                let t = self.peek()?;
                if t.is(&Kind::Kw(Kw::By)) || t.is(&Kind::Kw(Kw::Without)) {
                    self.bump()?;
                    self.grouping_labels()?;
                }
                Ok(args)
            }
        })();
        self.agg_depth -= 1;
        let mut args = args?;
        let lower = op.val.to_ascii_lowercase();
        if args.is_empty() {
            return err(op.pos, "no arguments for aggregate expression provided");
        }
        let want = if matches!(
            lower.as_str(),
            "topk" | "bottomk" | "count_values" | "quantile"
        ) {
            2
        } else {
            1
        };
        if args.len() != want {
            return err(
                op.pos,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            );
        }
        let expr = Box::new(args.pop().unwrap_or(Node::Num(op.pos)));
        let param = args.pop().map(Box::new);
        Ok(Node::Agg {
            pos: op.pos,
            op: lower,
            param,
            expr,
        })
    }

    fn call(&mut self, name: Tok) -> R<Node> {
        let args = self.call_body()?;
        if function(&name.val).is_none() {
            return err(
                name.pos,
                format!("unknown function with name {}", go_quote(&name.val)),
            );
        }
        Ok(Node::Call {
            pos: name.pos,
            name: name.val,
            args,
        })
    }

    /// `( args )`, the `(` next.
    fn call_body(&mut self) -> R<Vec<Node>> {
        self.bump()?;
        let mut args = Vec::new();
        if self.peek()?.is(&Kind::RParen) {
            self.bump()?;
            return Ok(args);
        }
        args.push(self.expr(0)?);
        loop {
            let t = self.peek()?.clone();
            match t.kind {
                Kind::RParen => {
                    self.bump()?;
                    return Ok(args);
                }
                Kind::Comma => {
                    self.bump()?;
                    let n = self.peek()?;
                    if !Self::starts_expr(n) {
                        return err(t.pos, "trailing commas not allowed in function call args");
                    }
                    args.push(self.expr(0)?);
                }
                _ => return self.generic(&t),
            }
        }
    }

    fn duration(&mut self) -> R<i64> {
        let t = self.bump()?;
        match parse_duration(&t.val) {
            Ok(d) => Ok(d),
            Err(m) => err(t.pos, m),
        }
    }

    fn postfix(&mut self, mut e: Node) -> R<Node> {
        loop {
            let t = self.peek()?.clone();
            match t.kind {
                Kind::LBracket => {
                    self.bump()?;
                    let d = self.peek()?;
                    if !d.is(&Kind::Duration) {
                        return self.unexpected(d, "subquery selector", "duration");
                    }
                    self.duration()?;
                    let n = self.peek()?.clone();
                    match n.kind {
                        Kind::RBracket => {
                            self.bump()?;
                            let msg = match &e {
                                Node::Vs { offset: true, .. } => {
                                    Some("no offset modifiers allowed before range")
                                }
                                Node::Vs { at: Some(true), .. } => {
                                    Some("no @ modifiers allowed before range")
                                }
                                Node::Vs { .. } => None,
                                _ => Some("ranges only allowed for vector selectors"),
                            };
                            if let Some(m) = msg {
                                return err(t.pos, m);
                            }
                            e = Node::Matrix {
                                pos: e.pos(),
                                vs: Box::new(e),
                            };
                        }
                        Kind::Colon => {
                            self.bump()?;
                            let s = self.peek()?.clone();
                            match s.kind {
                                Kind::RBracket => {}
                                Kind::Duration => {
                                    self.duration()?;
                                    let c = self.peek()?;
                                    if !c.is(&Kind::RBracket) {
                                        return self.unexpected(c, "subquery selector", "\"]\"");
                                    }
                                }
                                _ => {
                                    return self.unexpected(
                                        &s,
                                        "subquery selector",
                                        "duration or \"]\"",
                                    );
                                }
                            }
                            self.bump()?;
                            e = Node::Subquery {
                                expr: Box::new(e),
                                offset: false,
                                at: None,
                            };
                        }
                        _ => {
                            return self.unexpected(&n, "subquery or range", "\":\" or \"]\"");
                        }
                    }
                }
                Kind::Kw(Kw::Offset) => {
                    self.bump()?;
                    let mut d = self.peek()?.clone();
                    if d.is(&Kind::Op(Op::Sub)) {
                        self.bump()?;
                        d = self.peek()?.clone();
                    }
                    if !d.is(&Kind::Duration) {
                        return self.unexpected(&d, "offset", "duration");
                    }
                    let dur = self.duration()?;
                    let pos = e.pos();
                    let set = match &mut e {
                        Node::Vs { offset, .. } => offset,
                        Node::Matrix { vs, .. } => match vs.as_mut() {
                            Node::Vs { offset, .. } => offset,
                            _ => return err(pos, "ranges only allowed for vector selectors"),
                        },
                        Node::Subquery { offset, .. } => offset,
                        _ => {
                            return err(
                                pos,
                                "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                            );
                        }
                    };
                    if *set {
                        return err(pos, "offset may not be set multiple times");
                    }
                    *set = dur != 0;
                }
                Kind::Op(Op::At) => {
                    self.bump()?;
                    let n = self.peek()?.clone();
                    let timestamp = match n.kind {
                        Kind::Number | Kind::Op(Op::Add | Op::Sub) => {
                            let neg = n.is(&Kind::Op(Op::Sub));
                            let num = if n.is(&Kind::Number) {
                                n
                            } else {
                                self.bump()?;
                                self.peek()?.clone()
                            };
                            if !num.is(&Kind::Number) {
                                return self.unexpected(&num, "@", "timestamp");
                            }
                            self.bump()?;
                            let mut ts = number(&num.val).map_err(|m| ParseErr {
                                pos: num.pos,
                                msg: m,
                            })?;
                            if neg {
                                ts = -ts;
                            }
                            if ts.is_nan()
                                || ts.is_infinite()
                                || ts >= i64::MAX as f64
                                || ts <= i64::MIN as f64
                            {
                                return err(
                                    e.pos(),
                                    format!("timestamp out of bounds for @ modifier: {}", go_f(ts)),
                                );
                            }
                            true
                        }
                        Kind::Start | Kind::End => {
                            self.bump()?;
                            for want in [Kind::LParen, Kind::RParen] {
                                let p = self.peek()?;
                                if !p.is(&want) {
                                    return self.unexpected(p, "@", "timestamp");
                                }
                                self.bump()?;
                            }
                            false
                        }
                        _ => return self.unexpected(&n, "@", "timestamp"),
                    };
                    let pos = e.pos();
                    let set = match &mut e {
                        Node::Vs { at, .. } => at,
                        Node::Matrix { vs, .. } => match vs.as_mut() {
                            Node::Vs { at, .. } => at,
                            _ => return err(pos, "ranges only allowed for vector selectors"),
                        },
                        Node::Subquery { at, .. } => at,
                        _ => {
                            return err(
                                pos,
                                "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                            );
                        }
                    };
                    if set.is_some() {
                        return err(pos, "@ <timestamp> may not be set multiple times");
                    }
                    *set = Some(timestamp);
                }
                _ => return Ok(e),
            }
        }
    }
}

/// The value of a string token (its quotes and escapes removed); the lexer has checked it.
fn unquote(tok: &str) -> String {
    let mut chars = tok.chars();
    let quote = chars.next().unwrap_or('"');
    let body: String = chars.collect();
    let body = body.strip_suffix(quote).unwrap_or(&body);
    if quote == '`' {
        return body.to_string();
    }
    let mut out = String::new();
    let mut it = body.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = it.next() else { break };
        let (n, base) = match e {
            'a' => {
                out.push('\x07');
                continue;
            }
            'b' => {
                out.push('\x08');
                continue;
            }
            'f' => {
                out.push('\x0c');
                continue;
            }
            'n' => {
                out.push('\n');
                continue;
            }
            'r' => {
                out.push('\r');
                continue;
            }
            't' => {
                out.push('\t');
                continue;
            }
            'v' => {
                out.push('\x0b');
                continue;
            }
            '0'..='7' => (2, 8),
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            c => {
                out.push(c);
                continue;
            }
        };
        let mut x = if base == 8 {
            e.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        for _ in 0..n {
            if let Some(d) = it.peek().and_then(|c| c.to_digit(base)) {
                x = x * base + d;
                it.next();
            }
        }
        if let Some(c) = char::from_u32(x) {
            out.push(c);
        }
    }
    out
}

/// Prometheus' `number`: Go's `ParseInt(s, 0, 64)`, else `ParseFloat(s, 64)`; the error is
/// `ParseFloat`'s.
fn number(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    if lower == "inf" {
        return Ok(f64::INFINITY);
    }
    if lower == "nan" {
        return Ok(f64::NAN);
    }
    let bad = |why: &str| {
        Err(format!(
            "error parsing number: strconv.ParseFloat: parsing {}: {why}",
            go_quote(s)
        ))
    };
    if let Some(hex) = lower.strip_prefix("0x") {
        return match i64::from_str_radix(hex, 16) {
            Ok(v) if !hex.is_empty() && !hex.starts_with('+') => Ok(v as f64),
            _ => bad("invalid syntax"),
        };
    }
    let mantissa = lower.split('e').next().unwrap_or("");
    if !mantissa.chars().any(|c| c.is_ascii_digit()) {
        return bad("invalid syntax");
    }
    match lower.parse::<f64>() {
        Ok(v) if v.is_infinite() => bad("value out of range"),
        Ok(v) => Ok(v),
        Err(_) => bad("invalid syntax"),
    }
}

/// Prometheus 2.42's duration (`model.ParseDuration`, then "must be greater than 0"), in
/// milliseconds.
fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Err("duration must be greater than 0".into());
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(s));
    const UNITS: &[(&str, i128)] = &[
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let b = s.as_bytes();
    let (mut i, mut next_unit, mut total_ns, mut overflow) = (0, 0, 0i128, false);
    if b.is_empty() {
        return Err("empty duration string".into());
    }
    while i < b.len() {
        let d0 = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == d0 {
            return Err(invalid());
        }
        let digits = &s[d0..i];
        let unit = if s[i..].starts_with("ms") {
            "ms"
        } else if i < b.len() {
            &s[i..i + 1]
        } else {
            return Err(invalid());
        };
        let Some(k) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        let k = next_unit + k;
        next_unit = k + 1;
        i += unit.len();
        let n: i128 = digits.parse().unwrap_or(i128::MAX / 4);
        let n = n.min(i64::MAX as i128);
        let ms = UNITS[k].1;
        if n > (i64::MAX as i128) / (ms * 1_000_000) {
            overflow = true;
        }
        total_ns += n * ms * 1_000_000;
        if total_ns > i64::MAX as i128 {
            overflow = true;
        }
    }
    if overflow {
        return Err("duration out of range".into());
    }
    if total_ns == 0 {
        return Err("duration must be greater than 0".into());
    }
    Ok((total_ns / 1_000_000) as i64)
}

// ---------------------------------------------------------------------------------------
// Type checks after a clean parse (Prometheus' `checkAST`), errors in its order.

fn check(n: &Node, errs: &mut Vec<ParseErr>) -> Type {
    let add = |errs: &mut Vec<ParseErr>, pos: usize, msg: String| errs.push(ParseErr { pos, msg });
    match n {
        Node::Num(_) | Node::Str(_) => {}
        Node::Paren(_, e) => {
            check(e, errs);
        }
        Node::Unary(pos, e) => {
            let t = check(e, errs);
            if t != Type::Scalar && t != Type::Vector {
                errs.push(ParseErr {
                    pos: *pos,
                    msg: format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                        go_quote(t.documented())
                    ),
                });
            }
        }
        Node::Vs {
            pos,
            name,
            matchers,
            ..
        } => {
            if let Some(name) = name {
                for (l, _, v) in matchers {
                    if l == "__name__" {
                        add(
                            errs,
                            *pos,
                            format!(
                                "metric name must not be set twice: {} or {}",
                                go_quote(name),
                                go_quote(v)
                            ),
                        );
                    }
                }
            } else if !matchers.iter().any(|m| !matches_empty(m)) {
                add(
                    errs,
                    *pos,
                    "vector selector must contain at least one non-empty matcher".into(),
                );
            }
        }
        Node::Matrix { vs, .. } => {
            check(vs, errs);
        }
        Node::Subquery { expr, .. } => {
            let t = check(expr, errs);
            if t != Type::Vector {
                errs.push(ParseErr {
                    pos: n.pos(),
                    msg: format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        t.raw()
                    ),
                });
            }
        }
        Node::Call { name, args, .. } => {
            if let Some((types, _, variadic)) = function(name) {
                let nargs = types.len();
                if variadic == 0 {
                    if nargs != args.len() {
                        errs.push(ParseErr {
                            pos: n.pos(),
                            msg: format!(
                                "expected {nargs} argument(s) in call to {}, got {}",
                                go_quote(name),
                                args.len()
                            ),
                        });
                    }
                } else {
                    let na = nargs - 1;
                    if na > args.len() {
                        errs.push(ParseErr {
                            pos: n.pos(),
                            msg: format!(
                                "expected at least {na} argument(s) in call to {}, got {}",
                                go_quote(name),
                                args.len()
                            ),
                        });
                    } else if variadic > 0 && na + (variadic as usize) < args.len() {
                        errs.push(ParseErr {
                            pos: n.pos(),
                            msg: format!(
                                "expected at most {} argument(s) in call to {}, got {}",
                                na + variadic as usize,
                                go_quote(name),
                                args.len()
                            ),
                        });
                    }
                }
                for (i, a) in args.iter().enumerate() {
                    let i = if i >= nargs {
                        if variadic == 0 {
                            break;
                        }
                        nargs - 1
                    } else {
                        i
                    };
                    let t = check(a, errs);
                    if t != types[i] {
                        errs.push(ParseErr {
                            pos: a.pos(),
                            msg: format!(
                                "expected type {} in call to function {}, got {}",
                                types[i].documented(),
                                go_quote(name),
                                t.documented()
                            ),
                        });
                    }
                }
            }
        }
        Node::Agg {
            op, param, expr, ..
        } => {
            expect(expr, Type::Vector, "aggregation expression", errs);
            if let Some(p) = param {
                let want = if op == "count_values" {
                    Type::Str
                } else {
                    Type::Scalar
                };
                expect(p, want, "aggregation parameter", errs);
            }
        }
        Node::Binary {
            lhs,
            rhs,
            op,
            op_pos,
            m:
                Modifier {
                    bool_,
                    card,
                    on,
                    matching,
                    include,
                },
        } => {
            let lt = check(lhs, errs);
            let rt = check(rhs, errs);
            let mut add = |pos: usize, msg: String| errs.push(ParseErr { pos, msg });
            if *bool_ && !op.is_comparison() {
                add(
                    *op_pos,
                    "bool modifier can only be used on comparison operators".into(),
                );
            }
            if op.is_comparison()
                && !bool_
                && lhs.typ() == Type::Scalar
                && rhs.typ() == Type::Scalar
            {
                add(
                    *op_pos,
                    "comparisons between scalars must use BOOL modifier".into(),
                );
            }
            for l1 in matching {
                for l2 in include {
                    if l1 == l2 && *on {
                        add(
                            *op_pos,
                            format!(
                                "label {} must not occur in ON and GROUP clause at once",
                                go_quote(l1)
                            ),
                        );
                    }
                }
            }
            let pos = lhs.pos();
            if lt != Type::Scalar && lt != Type::Vector {
                add(
                    pos,
                    "binary expression must contain only scalar and instant vector types".into(),
                );
            }
            if rt != Type::Scalar && rt != Type::Vector {
                add(
                    rhs.pos(),
                    "binary expression must contain only scalar and instant vector types".into(),
                );
            }
            if lt != Type::Vector || rt != Type::Vector {
                if !matching.is_empty() {
                    add(
                        pos,
                        "vector matching only allowed between instant vectors".into(),
                    );
                }
            } else if op.is_set() && *card != Card::OneToOne {
                add(
                    pos,
                    format!("no grouping allowed for {} operation", go_quote(op.name())),
                );
            }
            if (lt == Type::Scalar || rt == Type::Scalar) && op.is_set() {
                add(
                    pos,
                    format!(
                        "set operator {} not allowed in binary scalar expression",
                        go_quote(op.name())
                    ),
                );
            }
        }
    }
    n.typ()
}

fn expect(n: &Node, want: Type, context: &str, errs: &mut Vec<ParseErr>) {
    let t = check(n, errs);
    if t != want {
        errs.push(ParseErr {
            pos: n.pos(),
            msg: format!(
                "expected type {} in {context}, got {}",
                want.documented(),
                t.documented()
            ),
        });
    }
}

/// Whether a matcher matches the empty string (a selector needs one that does not).
fn matches_empty((_, op, v): &(String, MatchOp, String)) -> bool {
    let re = || {
        regex::Regex::new(&format!("^(?:{v})$"))
            .map(|r| r.is_match(""))
            .unwrap_or(false)
    };
    match op {
        MatchOp::Eq => v.is_empty(),
        MatchOp::Ne => !v.is_empty(),
        MatchOp::Re => re(),
        MatchOp::Nre => !re(),
    }
}

/// Go's error for a label matcher's regular expression, as Prometheus 2.42 builds it: first
/// `regexp.Compile("^(?:" + re + ")$")`, then `syntax.Parse(re, Perl)` of the bare pattern.
///
/// Only what this is sure of is reported. Where Rust's `regex` (RE2 syntax, as Go's) accepts
/// the pattern, only what Go refuses and Rust does not counts: stacked repetitions (`a**`),
/// repeat counts above 1000, Perl groups Go lacks (`(?<name>…)`, `(?x)`), unknown POSIX
/// classes (`[[:foo:]]`). `None` when no error is found.
fn go_regexp_error(re: &str) -> Option<String> {
    let full = format!("^(?:{re})$");
    let go_only = |e: &GoRe| {
        matches!(
            e.code,
            "invalid nested repetition operator"
                | "invalid repeat count"
                | "invalid or unsupported Perl syntax"
                | "invalid character class range"
        )
    };
    for pattern in [full.as_str(), re] {
        if let Some(e) = scan_go_regexp(pattern) {
            let rust_ok = regex::Regex::new(pattern).is_ok();
            if !rust_ok || go_only(&e) {
                return Some(format!("error parsing regexp: {}: `{}`", e.code, e.text));
            }
            return None;
        }
    }
    None
}

struct GoRe {
    code: &'static str,
    text: String,
}

const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// The first error Go's `regexp/syntax` (Perl flags) reports for `pattern`, for the classes
/// it knows: parentheses, brackets, repetitions, escapes, Perl groups, POSIX classes.
fn scan_go_regexp(pattern: &str) -> Option<GoRe> {
    let cs: Vec<(usize, char)> = pattern.char_indices().collect();
    let at = |i: usize| cs.get(i).map(|c| c.1);
    let from = |i: usize| cs.get(i).map_or(pattern.len(), |c| c.0);
    let text = |a: usize, b: usize| pattern[from(a)..from(b)].to_string();
    let bad = |code: &'static str, text: String| Some(GoRe { code, text });
    let (mut i, mut depth) = (0usize, 0usize);
    // Whether the last thing parsed can be repeated, and where the repetition right before
    // (if any) started: Go refuses a repetition of a repetition (`a**`).
    let (mut can_repeat, mut last_repeat): (bool, Option<usize>) = (false, None);
    while let Some(c) = at(i) {
        match c {
            '\\' => {
                let Some(e) = at(i + 1) else {
                    return bad("trailing backslash at end of expression", String::new());
                };
                let mut j = i + 2;
                match e {
                    'Q' => {
                        // Literal text up to `\E` or the end.
                        while at(j).is_some() && !(at(j) == Some('\\') && at(j + 1) == Some('E')) {
                            j += 1;
                        }
                        if at(j).is_some() {
                            j += 2;
                        }
                    }
                    'p' | 'P' => {
                        if at(j) == Some('{') {
                            let open = j;
                            while at(j).is_some_and(|c| c != '}') {
                                j += 1;
                            }
                            if at(j).is_none() {
                                return bad("invalid character class range", text(i, j));
                            }
                            j += 1;
                            let name: String = cs[open + 1..j - 1].iter().map(|c| c.1).collect();
                            let name = name.strip_prefix('^').unwrap_or(&name);
                            if !name.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
                                || name.is_empty()
                            {
                                return bad("invalid character class range", text(i, j));
                            }
                        } else if at(j).is_some_and(|c| "CLMNPSZ".contains(c)) {
                            j += 1;
                        } else {
                            return bad("invalid character class range", text(i, j + 1));
                        }
                    }
                    'x' => {
                        if at(j) == Some('{') {
                            while at(j).is_some_and(|c| c != '}') {
                                j += 1;
                            }
                            j += 1;
                        } else {
                            j += 2;
                        }
                    }
                    '1'..='7' if !at(j).is_some_and(|c| ('0'..='7').contains(&c)) => {
                        return bad("invalid escape sequence", text(i, j));
                    }
                    '0'..='7' => {
                        while j < i + 4 && at(j).is_some_and(|c| ('0'..='7').contains(&c)) {
                            j += 1;
                        }
                    }
                    c if c.is_ascii_alphanumeric() && !"aAbBdDfnrsStvwWz".contains(c) => {
                        return bad("invalid escape sequence", text(i, j));
                    }
                    _ => {}
                }
                i = j;
                can_repeat = true;
                last_repeat = None;
                continue;
            }
            '(' => {
                if at(i + 1) == Some('?') {
                    let mut j = i + 2;
                    if at(j) == Some('P') && at(j + 1) == Some('<') {
                        while at(j).is_some_and(|c| c != '>') {
                            j += 1;
                        }
                        i = j + 1;
                    } else {
                        while at(j).is_some_and(|c| "imsU-".contains(c)) {
                            j += 1;
                        }
                        match at(j) {
                            Some(':') => i = j + 1,
                            Some(')') => {
                                // Flags only: nothing to repeat is added or removed.
                                i = j + 1;
                                last_repeat = None;
                                continue;
                            }
                            _ => {
                                return bad("invalid or unsupported Perl syntax", text(i, j + 1));
                            }
                        }
                    }
                } else {
                    i += 1;
                }
                depth += 1;
                can_repeat = false;
                last_repeat = None;
                continue;
            }
            ')' => {
                if depth == 0 {
                    return bad("unexpected )", pattern.to_string());
                }
                depth -= 1;
                can_repeat = true;
                last_repeat = None;
            }
            '[' => {
                let start = i;
                let mut j = i + 1;
                if at(j) == Some('^') {
                    j += 1;
                }
                let mut first = true;
                let mut last: Option<char> = None;
                loop {
                    match at(j) {
                        None => {
                            return bad("missing closing ]", pattern[from(start)..].to_string());
                        }
                        Some(']') if !first => break,
                        Some('[') if at(j + 1) == Some(':') => {
                            let rest: String = cs[j..].iter().map(|c| c.1).collect();
                            if let Some(end) = rest[2..].find(":]") {
                                let name = &rest[2..2 + end];
                                let name = name.strip_prefix('^').unwrap_or(name);
                                let len = rest[..end + 4].chars().count();
                                if !POSIX_CLASSES.contains(&name) {
                                    return bad("invalid character class range", text(j, j + len));
                                }
                                j += len - 1;
                                last = None;
                            } else {
                                last = Some('[');
                            }
                        }
                        Some('\\') => {
                            let e = at(j + 1);
                            let bad_escape = match e {
                                // `\pL` or `\p{Name}`: one letter or braces, else refused.
                                Some('p' | 'P') => {
                                    !at(j + 2).is_some_and(|c| c == '{' || "CLMNPSZ".contains(c))
                                }
                                Some('1'..='7') => {
                                    !at(j + 2).is_some_and(|c| ('0'..='7').contains(&c))
                                }
                                Some(c) => {
                                    c.is_ascii_alphanumeric() && !"0dDsSwWafnrtvx".contains(c)
                                }
                                None => false,
                            };
                            if bad_escape {
                                let (code, t) = if matches!(e, Some('p' | 'P')) {
                                    ("invalid character class range", text(j, j + 3))
                                } else {
                                    ("invalid escape sequence", text(j, j + 2))
                                };
                                return bad(code, t);
                            }
                            last = e;
                            j += 1;
                        }
                        Some('-') if last.is_some() && at(j + 1).is_some_and(|c| c != ']') => {
                            let lo = last.unwrap_or('-');
                            let mut k = j + 1;
                            let mut hi = at(k).unwrap_or('-');
                            if hi == '\\' {
                                k += 1;
                                hi = at(k).unwrap_or('-');
                            }
                            if hi < lo {
                                return bad("invalid character class range", text(j - 1, k + 1));
                            }
                            j = k;
                            last = None;
                        }
                        Some(c) => last = Some(c),
                    }
                    first = false;
                    j += 1;
                }
                i = j + 1;
                can_repeat = true;
                last_repeat = None;
                continue;
            }
            '*' | '+' | '?' | '{' => {
                let mut j = i + 1;
                if c == '{' {
                    // `{n}`, `{n,}`, `{n,m}`; anything else is a literal `{`.
                    let rest: String = cs[i..].iter().map(|c| c.1).collect();
                    let close = rest.find('}');
                    let parsed = close.map(|k| &rest[1..k]).and_then(|s| {
                        let (a, b) = match s.split_once(',') {
                            Some((a, b)) => (a, Some(b)),
                            None => (s, None),
                        };
                        let num = |t: &str| {
                            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                                .then(|| t.parse::<u64>().unwrap_or(u64::MAX))
                        };
                        let lo = num(a)?;
                        let hi = match b {
                            None => Some(lo),
                            Some("") => None,
                            Some(b) => Some(num(b)?),
                        };
                        Some((lo, hi))
                    });
                    let Some((lo, hi)) = parsed else {
                        i += 1;
                        can_repeat = true;
                        last_repeat = None;
                        continue;
                    };
                    let len = close.unwrap_or(0) + 1;
                    j = i + rest[..len].chars().count();
                    if lo > 1000 || hi.is_some_and(|h| h > 1000 || h < lo) {
                        return bad("invalid repeat count", text(i, j));
                    }
                }
                if at(j) == Some('?') {
                    j += 1;
                }
                if let Some(r) = last_repeat {
                    return bad("invalid nested repetition operator", text(r, j));
                }
                if !can_repeat {
                    return bad("missing argument to repetition operator", text(i, j));
                }
                last_repeat = Some(i);
                i = j;
                continue;
            }
            '|' => {
                can_repeat = false;
                last_repeat = None;
            }
            _ => {
                can_repeat = true;
                last_repeat = None;
            }
        }
        i += 1;
    }
    if depth > 0 {
        return bad("missing closing )", pattern.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn raw_strings_become_the_double_quoted_string_of_the_same_value() {
        use super::raw_strings_quoted as q;
        assert_eq!(q(r#"x{a="b"}"#), r#"x{a="b"}"#);
        assert_eq!(q(r"x{a=~`v\d+`}"), r#"x{a=~"v\\d+"}"#);
        assert_eq!(q("f(`a\"b`, `c`) + `d`"), r#"f("a\"b", "c") + "d""#);
        assert_eq!(q("x{a=`\t\x01`}"), r#"x{a="\t\x01"}"#);
        // what promql-parser reads is the value Prometheus reads from the raw string
        let e = crate::rules::promql::subset::parse(r"x{a=~`v\d+`}").unwrap();
        assert!(format!("{e:?}").contains(r"v\\d+"), "{e:?}");
        let e = crate::rules::promql::subset::parse("x{a=`\t\x01`}").unwrap();
        assert!(format!("{e:?}").contains(r#""\t\u{1}""#), "{e:?}");
    }

    #[test]
    fn first_errors_read_as_promtools() {
        for (q, want) in [
            ("foo * * bar", "1:7: parse error: unexpected <op:*>"),
            (
                "sum(foo * * bar)",
                "1:11: parse error: unexpected <op:*> in aggregation",
            ),
            (
                "rate(foo)",
                "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector",
            ),
            ("sum(foo", "1:8: parse error: unclosed left parenthesis"),
            (
                "foo{a=\"b\"\n",
                "2:1: parse error: unexpected end of input inside braces",
            ),
            (
                "{}",
                "1:1: parse error: vector selector must contain at least one non-empty matcher",
            ),
            (
                "@foo",
                "1:1: parse error: unexpected \"<Item 57385>\" <op:@>",
            ),
            (
                "foo @ 1e100",
                "1:1: parse error: timestamp out of bounds for @ modifier: 10000000000000000159028911097599180468360808563945281389781327557747838772170381060813469985856815104.000000",
            ),
        ] {
            assert_eq!(describe(q).as_deref(), Some(want), "{q}");
        }
        assert_eq!(describe("sum(rate(foo[5m])) by (a)"), None);
        // Nesting beyond the checker's bound is left to promql-parser, without a crash.
        let deep = format!("{}foo{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(describe(&deep), None);
        let deep_bad = format!("{}foo bar{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(describe(&deep_bad), None);
        let long = vec!["foo"; 5000].join(" + ");
        assert_eq!(describe(&long), None);
        assert_eq!(describe(&vec!["foo"; 100].join(" + ")), None);
        assert_eq!(
            describe(&format!("{} +", vec!["foo"; 100].join(" + "))).as_deref(),
            Some("1:600: parse error: unexpected end of input")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Any text, the odd characters included (escapes, quotes, `@`, `#`, non-ASCII):
        /// an answer, never a panic; and a regular expression likewise.
        #[test]
        fn never_panics(
            text in "[a-z_:(){}\\[\\]=~!<>+\\-*/^%,.0-9 \"'`$@#\\\\\n\té☺]{0,80}",
            re in "[a-z(){}\\[\\]?*+|^$.:\\-0-9,\\\\PQEpxbz☺]{0,30}",
        ) {
            let _ = describe(&text);
            let _ = describe(&format!("foo{{a=~{re:?}}}"));
        }
    }
}
