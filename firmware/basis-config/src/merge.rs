//! Deep merging of configuration layers, remembering which source set each key.

use std::collections::BTreeMap;

use toml::{Table, Value};

/// Where a configuration value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// A file path, an environment variable name or `--set <key>`.
    pub source: String,
    /// 1-based line of the value, when set in a file.
    pub line: Option<usize>,
    /// 1-based column of the value, when set in a file.
    pub column: Option<usize>,
}

/// One source's settings, already checked against the schema on its own.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// The settings as written.
    pub table: Table,
    /// Where each dotted leaf key of `table` was set.
    pub origins: BTreeMap<String, Origin>,
}

/// The layers merged so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Merged {
    /// The merged settings.
    pub table: Table,
    /// Which source last set each dotted leaf key.
    pub origins: BTreeMap<String, Origin>,
}

impl Merged {
    /// Lays `layer` over what is merged so far: tables merge key by key, later values win.
    pub fn apply(&mut self, layer: Layer) {
        merge_tables(&mut self.table, layer.table);
        self.origins.extend(layer.origins);
    }

    /// The origin of `field`, or of the nearest enclosing table that has one.
    pub fn origin_of(&self, field: &str) -> Option<&Origin> {
        let mut key = field;
        loop {
            if let Some(origin) = self.origins.get(key) {
                return Some(origin);
            }
            key = key.rsplit_once('.')?.0;
        }
    }
}

impl Merged {
    /// Where the first setting inside `table` (a dotted path) came from, the one earliest in
    /// its file: what to blame for a table as a whole.
    pub fn origin_within(&self, table: &str) -> Option<&Origin> {
        let prefix = format!("{table}.");
        self.origins
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(_, origin)| origin)
            .min_by_key(|o| (o.line, o.column))
    }
}

/// Merges `over` into `base`: tables merge recursively, anything else replaces.
fn merge_tables(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(over_inner)) => {
                merge_tables(inner, over_inner)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The dotted paths of the leaves (non-table values) of `table`, in table order.
    pub(crate) fn leaf_keys(table: &Table) -> Vec<String> {
        fn walk(table: &Table, prefix: &str, out: &mut Vec<String>) {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match value {
                    Value::Table(inner) => walk(inner, &path, out),
                    _ => out.push(path),
                }
            }
        }
        let mut out = Vec::new();
        walk(table, "", &mut out);
        out
    }

    fn layer(text: &str, source: &str) -> Layer {
        let table: Table = toml::from_str(text).unwrap();
        let origins = leaf_keys(&table)
            .into_iter()
            .map(|k| {
                (
                    k,
                    Origin {
                        source: source.into(),
                        line: None,
                        column: None,
                    },
                )
            })
            .collect();
        Layer { table, origins }
    }

    #[test]
    fn later_layers_win_key_by_key() {
        let mut merged = Merged::default();
        merged.apply(layer(
            "[store]\nquota_mib = 1\nreaders = 3\n[log]\nlevel = \"warn\"",
            "a",
        ));
        merged.apply(layer("[store]\nquota_mib = 2", "b"));
        let expected: Table =
            toml::from_str("[store]\nquota_mib = 2\nreaders = 3\n[log]\nlevel = \"warn\"").unwrap();
        assert_eq!(merged.table, expected);
        assert_eq!(merged.origins["store.quota_mib"].source, "b");
        assert_eq!(merged.origins["store.readers"].source, "a");
        assert_eq!(merged.origins["log.level"].source, "a");
    }

    #[test]
    fn origin_falls_back_to_enclosing_table() {
        let mut merged = Merged::default();
        merged.apply(layer("store = 5", "x"));
        assert_eq!(
            merged
                .origin_of("store.quota_mib")
                .map(|o| o.source.as_str()),
            Some("x")
        );
        assert_eq!(merged.origin_of("log.level"), None);
    }

    #[test]
    fn leaf_keys_are_dotted() {
        let table: Table = toml::from_str("a = 1\n[b]\nc = 2\nd = [1]").unwrap();
        assert_eq!(leaf_keys(&table), ["a", "b.c", "b.d"]);
    }
}
