//! Configuration errors that point at the source, position and field at fault.

use std::fmt;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file or directory could not be read.
    Read,
    /// The text is not valid TOML, or a setting name is malformed.
    Syntax,
    /// A key that the schema does not have.
    UnknownField,
    /// A value of the wrong type, e.g. a string where a number belongs.
    WrongType,
    /// A value of the right type that is not allowed, e.g. out of range.
    Invalid,
}

impl ErrorKind {
    /// A short stable name, e.g. for JSON output: `"read"`, `"syntax"`, `"unknown_field"`,
    /// `"wrong_type"` or `"invalid"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Syntax => "syntax",
            Self::UnknownField => "unknown_field",
            Self::WrongType => "wrong_type",
            Self::Invalid => "invalid",
        }
    }
}

/// A configuration problem, displayed as one line such as
/// `/etc/basis/basis.toml:3:13: store.quota_mib: invalid type: string "lots", expected u64`.
///
/// Display and `Error` are written by hand rather than with `thiserror`, because
/// `thiserror` would take the public `source` field for the error's cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What kind of problem this is.
    pub kind: ErrorKind,
    /// Where the bad value came from: a file path, an environment variable name,
    /// `--set <key>`, or `built-in defaults`.
    pub source: String,
    /// 1-based line in `source`, when it is a file.
    pub line: Option<usize>,
    /// 1-based column (in characters) in `source`, when it is a file.
    pub column: Option<usize>,
    /// Dotted path of the field at fault, e.g. `store.quota_mib`.
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        // An unknown field's reason already names it.
        match &self.field {
            Some(field) if self.kind != ErrorKind::UnknownField => {
                write!(f, ": {field}: {}", self.reason)
            }
            _ => write!(f, ": {}", self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about `source` as a whole, with no position or field.
    pub(crate) fn new(kind: ErrorKind, source: &str, reason: impl Into<String>) -> Self {
        Self {
            kind,
            source: source.to_owned(),
            line: None,
            column: None,
            field: None,
            reason: reason.into(),
        }
    }

    /// Sets line and column from a byte offset into `text`.
    pub(crate) fn at_offset(mut self, text: &str, offset: Option<usize>) -> Self {
        if let Some(offset) = offset {
            let (line, column) = line_column(text, offset);
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }

    /// A TOML syntax error in `text`, read from `source`.
    pub(crate) fn syntax(source: &str, text: &str, err: &toml::de::Error) -> Self {
        Self::new(ErrorKind::Syntax, source, one_line(err.message()))
            .at_offset(text, err.span().map(|s| s.start))
    }

    /// A schema error (unknown field, wrong type, bad value) found while deserializing.
    pub(crate) fn schema(source: &str, err: &serde_path_to_error::Error<toml::de::Error>) -> Self {
        let path = err.path().to_string();
        let field = (path != ".").then_some(path);
        let message = one_line(err.inner().message());
        let (kind, reason) = describe(field.as_deref(), &message);
        Self {
            field,
            ..Self::new(kind, source, reason)
        }
    }
}

/// Classifies a serde message and rewords it for a person: an unknown field names its
/// table, lists of names lose their backticks, and Rust type names of tables go.
fn describe(field: Option<&str>, message: &str) -> (ErrorKind, String) {
    let (head, expected) = match message.split_once(", expected ") {
        Some((head, list)) if list.starts_with("struct ") => (head, ", expected a table".into()),
        Some((head, list)) if message.starts_with("unknown ") => {
            (head, format!(", expected {}", list.replace('`', "")))
        }
        Some((head, list)) => (head, format!(", expected {list}")),
        None => (message, String::new()),
    };
    if message.starts_with("unknown field") {
        let (table, name) = match field.and_then(|f| f.rsplit_once('.')) {
            Some((table, name)) => (Some(table), name),
            None => (None, field.unwrap_or("?")),
        };
        let reason = match table {
            Some(table) => format!("unknown field `{name}` in [{table}]{expected}"),
            None => format!("unknown section `{name}`{expected}"),
        };
        (ErrorKind::UnknownField, reason)
    } else if message.starts_with("invalid type") {
        (ErrorKind::WrongType, format!("{head}{expected}"))
    } else {
        (ErrorKind::Invalid, format!("{head}{expected}"))
    }
}

/// Joins a possibly multi-line message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..end).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\n[store]\nné = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 14), (3, 1));
        // After the two-byte 'é' the column counts characters.
        assert_eq!(line_column(text, 17), (3, 3));
        // Out of range and mid-character offsets do not panic.
        assert_eq!(line_column(text, 16), (3, 2));
        assert_eq!(line_column(text, 999), (4, 1));
    }

    #[test]
    fn renders_one_line_with_position_and_field() {
        let err = ConfigError {
            line: Some(3),
            column: Some(13),
            field: Some("store.quota_mib".into()),
            ..ConfigError::new(
                ErrorKind::WrongType,
                "/etc/basis/conf.d/10-pi.toml",
                "invalid type: string \"lots\", expected u64",
            )
        };
        assert_eq!(
            err.to_string(),
            "/etc/basis/conf.d/10-pi.toml:3:13: store.quota_mib: invalid type: string \"lots\", expected u64"
        );
        let read = ConfigError::new(ErrorKind::Read, "/tmp/x.toml", "cannot read: gone");
        assert_eq!(read.to_string(), "/tmp/x.toml: cannot read: gone");
    }

    #[test]
    fn unknown_field_names_its_table() {
        let (kind, reason) = describe(
            Some("store.quota"),
            "unknown field `quota`, expected `quota_mib` or `readers`",
        );
        assert_eq!(kind, ErrorKind::UnknownField);
        assert_eq!(
            reason,
            "unknown field `quota` in [store], expected quota_mib or readers"
        );
        let (_, reason) = describe(
            Some("stor"),
            "unknown field `stor`, expected one of `node`, `store`",
        );
        assert_eq!(
            reason,
            "unknown section `stor`, expected one of node, store"
        );
    }

    #[test]
    fn other_messages_are_tidied() {
        let message = "unknown variant `x`, expected one of `info`, `debug`";
        let (kind, reason) = describe(Some("log.level"), message);
        assert_eq!(kind, ErrorKind::Invalid);
        assert_eq!(reason, "unknown variant `x`, expected one of info, debug");
        let message = "invalid type: integer `5`, expected struct StoreConfig";
        let (kind, reason) = describe(Some("store"), message);
        assert_eq!(kind, ErrorKind::WrongType);
        assert_eq!(reason, "invalid type: integer `5`, expected a table");
        let message = "invalid type: string \"x\", expected u64";
        assert_eq!(describe(Some("a.b"), message).1, message);
        let message = "invalid value: integer `-1`, expected u64";
        assert_eq!(
            describe(Some("a.b"), message),
            (ErrorKind::Invalid, message.to_owned())
        );
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line("first\n  second\n\n"), "first; second");
    }
}
