//! Settings given one key at a time: environment variables and command-line overrides.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::error::{ConfigError, ErrorKind};
use crate::merge::{Layer, Origin};
use crate::schema::{Config, SECTIONS};

/// Prefix of the environment variables that set configuration values.
pub const ENV_PREFIX: &str = "BASIS_";

/// One `key = value` setting and who gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The environment variable name or `--set <key>`.
    pub source: String,
    /// Dotted key, e.g. `store.quota_mib`.
    pub key: String,
    /// The value as given, parsed as TOML when it can be.
    pub raw: String,
}

/// The settings among environment variables: `BASIS_<SECTION>_<KEY>` for a known section,
/// sorted by variable name. Other variables, `BASIS_` ones included, are ignored.
pub(crate) fn env_settings(vars: &[(String, String)]) -> Vec<Setting> {
    let mut settings: Vec<Setting> = vars
        .iter()
        .filter_map(|(name, raw)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            SECTIONS.iter().find_map(|section| {
                let key = rest
                    .strip_prefix(&section.to_ascii_uppercase())?
                    .strip_prefix('_')?;
                Some(Setting {
                    source: name.clone(),
                    key: format!("{section}.{}", key.to_ascii_lowercase()),
                    raw: raw.clone(),
                })
            })
        })
        .collect();
    settings.sort_by(|a, b| a.source.cmp(&b.source));
    settings
}

/// Splits a `--set` argument `KEY=VALUE` (e.g. `store.quota_mib=512`) at its first `=`.
///
/// Fits clap's `value_parser`; the pair goes into [`crate::Sources::overrides`].
pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(ConfigError::new(
            ErrorKind::Syntax,
            "--set",
            format!("`{arg}` is not KEY=VALUE, e.g. store.quota_mib=512"),
        )),
    }
}

/// Command-line overrides, in the order given; each is named `--set <key>`.
pub(crate) fn override_settings(overrides: &[(String, String)]) -> Vec<Setting> {
    overrides
        .iter()
        .map(|(key, raw)| Setting {
            source: format!("--set {key}"),
            key: key.clone(),
            raw: raw.clone(),
        })
        .collect()
}

impl Setting {
    /// Checks the setting against the schema on its own and makes it a layer.
    ///
    /// The value is read as TOML (`512`, `true`, `"x"`); when that fails, or gives a type the
    /// field does not take, the text as given is tried as a string.
    pub fn into_layer(self) -> Result<Layer, ConfigError> {
        let parts: Vec<&str> = self.key.split('.').collect();
        if parts.iter().any(|part| part.is_empty()) {
            return Err(ConfigError::new(
                ErrorKind::Syntax,
                &self.source,
                format!(
                    "`{}` is not a setting name; expected SECTION.KEY, e.g. store.quota_mib",
                    self.key
                ),
            ));
        }
        let mut candidates = Vec::new();
        if let Ok(value) = self.raw.parse::<Value>() {
            candidates.push(value);
        }
        if !matches!(candidates.first(), Some(Value::String(_))) {
            candidates.push(Value::String(self.raw.clone()));
        }
        let mut first_error = None;
        for value in candidates {
            let table = nest(&parts, value);
            match serde_path_to_error::deserialize::<_, Config>(Value::Table(table.clone())) {
                Ok(_) => {
                    let origin = Origin {
                        source: self.source,
                        line: None,
                        column: None,
                    };
                    let origins = BTreeMap::from([(self.key, origin)]);
                    return Ok(Layer { table, origins });
                }
                Err(err) => {
                    first_error.get_or_insert_with(|| ConfigError::schema(&self.source, &err));
                }
            }
        }
        Err(first_error
            .unwrap_or_else(|| ConfigError::new(ErrorKind::Invalid, &self.source, "no value")))
    }
}

/// The table `{a = {b = value}}` for the key parts `[a, b]`.
fn nest(parts: &[&str], value: Value) -> Table {
    let mut value = value;
    for part in parts.iter().skip(1).rev() {
        value = Value::Table(Table::from_iter([(part.to_string(), value)]));
    }
    let first = parts.first().map_or_else(String::new, |p| p.to_string());
    Table::from_iter([(first, value)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn layer(source: &str, key: &str, raw: &str) -> Result<Layer, ConfigError> {
        Setting {
            source: source.into(),
            key: key.into(),
            raw: raw.into(),
        }
        .into_layer()
    }

    #[test]
    fn picks_known_sections_only() {
        let settings = env_settings(&vars(&[
            ("BASIS_STORE_QUOTA_MIB", "512"),
            ("BASIS_NODE_DATA_DIR", "/x"),
            ("BASIS_CONFIG", "/etc/other.toml"),
            ("BASIS_TEST_X", "1"),
            ("BASIS_LOGLEVEL", "debug"),
            ("PATH", "/bin"),
        ]));
        let keys: Vec<(&str, &str)> = settings
            .iter()
            .map(|s| (s.source.as_str(), s.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("BASIS_NODE_DATA_DIR", "node.data_dir"),
                ("BASIS_STORE_QUOTA_MIB", "store.quota_mib")
            ]
        );
    }

    #[test]
    fn values_parse_as_toml_or_fall_back_to_text() {
        let get = |key: &str, raw: &str| {
            let layer = layer("X", key, raw).unwrap();
            let (section, name) = key.split_once('.').unwrap();
            layer.table[section][name].clone()
        };
        assert_eq!(get("store.quota_mib", "512"), Value::Integer(512));
        assert_eq!(
            get("node.data_dir", "/srv/basis"),
            Value::String("/srv/basis".into())
        );
        assert_eq!(
            get("node.name", "\"quoted\""),
            Value::String("quoted".into())
        );
        // A number or boolean given for a text field is taken as text.
        assert_eq!(get("node.name", "123"), Value::String("123".into()));
        assert_eq!(get("node.name", "true"), Value::String("true".into()));
        assert_eq!(get("log.level", "debug"), Value::String("debug".into()));
    }

    #[test]
    fn bad_values_name_the_variable_and_field() {
        let err = layer("BASIS_STORE_QUOTA_MIB", "store.quota_mib", "lots").unwrap_err();
        assert_eq!(
            err.to_string(),
            "BASIS_STORE_QUOTA_MIB: store.quota_mib: invalid type: string \"lots\", expected u64"
        );
        assert_eq!(err.kind, ErrorKind::WrongType);
        let err = layer("BASIS_STORE_READERS", "store.readers", "-1").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("store.readers"));
        assert!(err.reason.contains("-1"), "{err}");
    }

    #[test]
    fn unknown_key_in_known_section_errors() {
        let err = layer("BASIS_STORE_FOO", "store.foo", "1").unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownField);
        assert_eq!(err.field.as_deref(), Some("store.foo"));
        assert!(
            err.to_string()
                .starts_with("BASIS_STORE_FOO: unknown field `foo` in [store], expected"),
            "{err}"
        );
    }

    #[test]
    fn malformed_override_keys_error() {
        for key in ["", "store.", ".quota_mib", "store..readers"] {
            let err = layer(&format!("--set {key}"), key, "1").unwrap_err();
            assert_eq!(err.kind, ErrorKind::Syntax, "{key}");
        }
        let err = layer("--set store", "store", "1").unwrap_err();
        assert_eq!(err.kind, ErrorKind::WrongType);
        let err = layer("--set quota", "quota", "1").unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownField);
    }

    #[test]
    fn override_arguments_split_at_first_equals() {
        assert_eq!(
            parse_override("store.quota_mib=512").unwrap(),
            ("store.quota_mib".to_owned(), "512".to_owned())
        );
        assert_eq!(parse_override("node.name=a=b").unwrap().1, "a=b");
        assert_eq!(parse_override("node.name=").unwrap().1, "");
        for bad in ["store.quota_mib", "=5", ""] {
            assert_eq!(
                parse_override(bad).unwrap_err().kind,
                ErrorKind::Syntax,
                "{bad}"
            );
        }
    }

    #[test]
    fn overrides_are_named_by_key() {
        let settings = override_settings(&vars(&[("store.readers", "4")]));
        assert_eq!(settings[0].source, "--set store.readers");
        assert_eq!(settings[0].key, "store.readers");
    }
}
