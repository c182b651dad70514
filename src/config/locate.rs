//! Finds where a field path (`brokers[1].tls.ca_file`) was written in a YAML text.
//!
//! serde_yaml reports positions for errors it raises itself, but our validation runs after
//! deserialisation, when positions are gone. This walks the document once with a marked event
//! parser and records the line/column of every value by its path, so a validation error can
//! still say `file:line:column`.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based position in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Path → position of the value (or, for a key whose value is absent, of the key).
#[derive(Debug, Default)]
pub struct Locator {
    positions: HashMap<String, Position>,
    /// Mapping path → position of its first key (where go-yaml places a block mapping node).
    starts: HashMap<String, Position>,
}

impl Locator {
    /// Index `text`. A text the YAML parser refuses yields an empty index: serde_yaml will have
    /// reported that error with its own position already.
    pub fn new(text: &str) -> Self {
        let mut walker = Walker {
            lines: text.lines().collect(),
            ..Walker::default()
        };
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut walker, false).is_err() {
            return Self::default();
        }
        Self {
            positions: walker.positions,
            starts: walker.starts,
        }
    }

    /// The position of `path` if it was written (no fallback to a parent).
    pub fn get(&self, path: &str) -> Option<Position> {
        self.positions.get(path).copied()
    }

    /// The position of the first key of the mapping at `path` (`  - name: g` → the `n`), as
    /// go-yaml (and so Prometheus' `rulefmt`) positions a block mapping.
    pub fn start(&self, path: &str) -> Option<Position> {
        self.starts.get(path).copied()
    }

    /// The position of `path`, or of its closest written ancestor (a missing field is reported
    /// where its parent is).
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    /// `key_at`: where the current key was written.
    Map {
        path: String,
        key: Option<String>,
        key_at: Option<Position>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Walker<'t> {
    /// The text's lines, to find where a value node starts (see [`Walker::node_start`]).
    lines: Vec<&'t str>,
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
    starts: HashMap<String, Position>,
}

impl Walker<'_> {
    /// Where a mapping value starts as go-yaml (and so promtool) places it: at its first
    /// character after `key:` on the key's line, properties and indicators included. The
    /// scanner's mark is the scalar's content: past an anchor (`&a x`), a tag (`!!str x`)
    /// or a block scalar's indicator (`expr: |`, content on the next line), where go-yaml
    /// points at the `&`, `!` or `|`. A value that starts on a later line keeps its mark.
    fn node_start(&self, key_at: Option<Position>, mark: Position) -> Position {
        let Some(key) = key_at else { return mark };
        let Some(line) = self.lines.get(key.line.wrapping_sub(1)) else {
            return mark;
        };
        let chars: Vec<char> = line.chars().collect();
        let mut i = key.column.saturating_sub(1);
        // Past the key: a quoted key to its closing quote, a plain one to `: ` or the end.
        match chars.get(i) {
            Some(&q) if q == '"' || q == '\'' => {
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\\' && q == '"' {
                        i += 2;
                        continue;
                    }
                    if chars[i] == q {
                        if q == '\'' && chars.get(i + 1) == Some(&'\'') {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                while i < chars.len() && chars[i] != ':' {
                    i += 1;
                }
            }
            _ => {
                while i < chars.len()
                    && !(chars[i] == ':' && chars.get(i + 1).is_none_or(|c| c.is_whitespace()))
                {
                    i += 1;
                }
            }
        }
        if chars.get(i) != Some(&':') {
            return mark;
        }
        i += 1;
        while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
            i += 1;
        }
        match chars.get(i) {
            Some(c) if *c != '#' => {
                let at = Position {
                    line: key.line,
                    column: i + 1,
                };
                // Never past the mark (a value the scan misread stays where the scanner saw it).
                if (at.line, at.column) <= (mark.line, mark.column) {
                    at
                } else {
                    mark
                }
            }
            _ => mark,
        }
    }

    /// Where the current mapping key was written, if the node about to start is its value.
    fn key_at(&self) -> Option<Position> {
        match self.stack.last() {
            Some(Frame::Map {
                key: Some(_),
                key_at,
                ..
            }) => *key_at,
            _ => None,
        }
    }

    /// Path of the node about to start, or `None` if the node is a mapping key.
    fn child_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map {
                path, key: Some(k), ..
            }) => Some(if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            }),
            Some(Frame::Seq { path, index }) => Some(format!("{path}[{index}]")),
        }
    }

    /// A value node finished: the parent map now expects a key, the sequence the next item.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, key_at, .. }) => {
                *key = None;
                *key_at = None;
            }
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Walker<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match ev {
            Event::Scalar(value, ..) => match self.child_path() {
                None => {
                    if let Some(Frame::Map { path, key, key_at }) = self.stack.last_mut() {
                        let full = if path.is_empty() {
                            value.clone()
                        } else {
                            format!("{path}.{value}")
                        };
                        self.positions.entry(full).or_insert(pos);
                        self.starts.entry(path.clone()).or_insert(pos);
                        *key = Some(value);
                        *key_at = Some(pos);
                    }
                }
                Some(p) => {
                    let at = self.node_start(self.key_at(), pos);
                    self.positions.insert(p, at);
                    self.value_done();
                }
            },
            Event::Alias(_) => {
                if let Some(p) = self.child_path() {
                    let at = self.node_start(self.key_at(), pos);
                    self.positions.insert(p, at);
                }
                self.value_done();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A complex mapping key (`? [a]: b`) is not something our config uses; treat
                // it as an anonymous value so the walk stays balanced.
                let path = self.child_path().unwrap_or_default();
                self.positions.entry(path.clone()).or_insert(pos);
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        path,
                        key: None,
                        key_at: None,
                    }
                } else {
                    Frame::Seq { path, index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_and_falls_back_to_parents() {
        let text = "listen: x\nbrokers:\n  - name: a\n    tls:\n      ca_file: /nope\n  - url: b\n";
        let l = Locator::new(text);
        assert_eq!(l.find("listen"), Some(Position { line: 1, column: 9 }));
        assert_eq!(l.find("brokers[0].tls.ca_file").map(|p| p.line), Some(5));
        assert_eq!(l.find("brokers[1].url").map(|p| p.line), Some(6));
        // a field that was not written is reported at its closest written parent
        assert_eq!(l.find("brokers[1].name").map(|p| p.line), Some(6));
        assert_eq!(l.find("nothing"), None);
    }

    #[test]
    fn a_value_starts_where_go_yaml_starts_it() {
        let text = "a: |\n  x\nb: &n y\nc: !!str z\n\"d:e\": 'w'\nf:   v # c\ng:\n  u\n";
        let l = Locator::new(text);
        let at = |p: &str| l.get(p).map(|p| (p.line, p.column));
        assert_eq!(at("a"), Some((1, 4)), "a block scalar: its indicator");
        assert_eq!(at("b"), Some((3, 4)), "an anchor");
        assert_eq!(at("c"), Some((4, 4)), "a tag");
        assert_eq!(at("d:e"), Some((5, 8)), "after a quoted key");
        assert_eq!(at("f"), Some((6, 6)), "past the blanks");
        assert_eq!(at("g"), Some((8, 3)), "on its own line: the scanner's mark");
    }
}
