//! Configuration errors: where (source, line/column, field path) and what, and serde_yaml's
//! own errors brought into that shape.

use std::fmt;
use std::path::Path;

/// A configuration error: where (source, position, field path) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted field path (`brokers[0].tls.ca_file`); empty for whole-document errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_name)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The text of a file named by the configuration (`what` names it in the error).
pub(crate) fn read_text(path: &Path, what: &str) -> Result<(String, String), ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source_name: name.clone(),
        line: None,
        column: None,
        path: String::new(),
        message: format!("cannot read {what}: {e}"),
    })?;
    Ok((name, text))
}

/// serde_yaml's message ends in " at line L column C"; we move the position to the front,
/// and split off its `path: ` prefix so every error reads the same way.
pub(crate) fn yaml_error(source_name: &str, e: &serde_yaml::Error) -> ConfigError {
    let mut message = e.to_string();
    let (line, column) = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
            (Some(loc.line()), Some(loc.column()))
        }
        None => (None, None),
    };
    let mut path = String::new();
    if let Some((p, rest)) = message.split_once(": ") {
        let looks_like_path = !p.is_empty()
            && !p.contains(' ')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
        if looks_like_path {
            path = p.to_owned();
            message = rest.to_owned();
        }
    }
    // Point at the misspelt field itself, not at the mapping that holds it.
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
        .map(|(f, _)| f.to_owned())
    {
        path = if path.is_empty() {
            field
        } else {
            format!("{path}.{field}")
        };
    }
    ConfigError {
        source_name: source_name.to_owned(),
        line,
        column,
        path,
        message,
    }
}
