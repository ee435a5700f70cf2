//! Layered loading: defaults, main file, drop-ins, environment, then command-line overrides.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::{Table, Value};

use crate::env::{env_settings, override_settings};
use crate::error::{ConfigError, ErrorKind, line_column};
use crate::merge::{Layer, Merged, Origin};
use crate::schema::Config;
use crate::validate::validate;

/// The main configuration file used when none is named.
pub const DEFAULT_MAIN: &str = "/etc/basis/basis.toml";

/// Source named for a value that no layer set.
const DEFAULTS_SOURCE: &str = "built-in defaults";

/// Where the configuration comes from, in the order the layers apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The main file.
    pub main: PathBuf,
    /// True when the user named the main file (`--config`): then a missing one is an error.
    pub main_required: bool,
    /// Drop-in directory; `None` means `conf.d` beside the main file. Missing is fine.
    pub conf_d: Option<PathBuf>,
    /// Environment variables, e.g. from `std::env::vars_os()` with non-UTF-8 ones left out.
    /// Only `BASIS_<SECTION>_<KEY>` for a known section are used.
    pub env: Vec<(String, String)>,
    /// Command-line overrides as (dotted key, value), e.g. `("store.quota_mib", "512")`.
    pub overrides: Vec<(String, String)>,
}

impl Default for Sources {
    /// The installed main file (optional), its `conf.d`, and no environment or overrides.
    fn default() -> Self {
        Self {
            main: PathBuf::from(DEFAULT_MAIN),
            main_required: false,
            conf_d: None,
            env: Vec::new(),
            overrides: Vec::new(),
        }
    }
}

impl Sources {
    /// Checks that the main file exists when the user named it: a file named explicitly that
    /// is missing is an error naming it, while the default one missing is fine. [`load`]
    /// applies the same rule; this is for commands that do not load the configuration, such
    /// as the first-boot import, so that they agree with it.
    pub fn check_main(&self) -> Result<(), ConfigError> {
        match std::fs::metadata(&self.main) {
            Err(err) if self.main_required => Err(read_error(&self.main, &err)),
            _ => Ok(()),
        }
    }

    /// The drop-in directory these sources use.
    pub fn conf_d_dir(&self) -> PathBuf {
        match &self.conf_d {
            Some(dir) => dir.clone(),
            None => self
                .main
                .parent()
                .unwrap_or_else(|| Path::new(""))
                .join("conf.d"),
        }
    }
}

/// A loaded, checked configuration and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The files actually read, in the order they were applied.
    pub files: Vec<PathBuf>,
    /// Which source last set each dotted key; keys left at their default are absent.
    pub origins: BTreeMap<String, Origin>,
}

/// Loads the configuration from all `sources`, layer over layer, and checks it.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let mut merged = Merged::default();
    let mut files = Vec::new();

    let main_text = match std::fs::read_to_string(&sources.main) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == io::ErrorKind::NotFound && !sources.main_required => None,
        Err(err) => return Err(read_error(&sources.main, &err)),
    };
    if let Some(text) = main_text {
        merged.apply(file_layer(&sources.main.display().to_string(), &text)?);
        files.push(sources.main.clone());
    }
    for path in drop_ins(&sources.conf_d_dir())? {
        let text = std::fs::read_to_string(&path).map_err(|err| read_error(&path, &err))?;
        merged.apply(file_layer(&path.display().to_string(), &text)?);
        files.push(path);
    }
    let settings = env_settings(&sources.env)
        .into_iter()
        .chain(override_settings(&sources.overrides));
    for setting in settings {
        merged.apply(setting.into_layer()?);
    }
    let config = finish(&merged)?;
    Ok(Loaded {
        config,
        files,
        origins: merged.origins,
    })
}

/// Checks one file alone laid over the defaults.
pub fn check_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| read_error(path, &err))?;
    parse_str(&text, &path.display().to_string())
}

/// Parses and checks configuration `text` laid over the defaults; `origin` names it in errors.
pub fn parse_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let mut merged = Merged::default();
    merged.apply(file_layer(origin, text)?);
    finish(&merged)
}

/// The `*.toml` files in `dir`, sorted by file name; none when `dir` does not exist.
/// Hidden files (editor leftovers) are skipped.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(list_error(dir, &err)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|err| list_error(dir, &err))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".toml") && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Parses one file's text, checks it against the schema on its own, and records where each
/// value sits.
fn file_layer(source: &str, text: &str) -> Result<Layer, ConfigError> {
    let document = DeTable::parse(text).map_err(|err| ConfigError::syntax(source, text, &err))?;
    let deserializer =
        toml::Deserializer::parse(text).map_err(|err| ConfigError::syntax(source, text, &err))?;
    serde_path_to_error::deserialize::<_, Config>(deserializer).map_err(|err| {
        ConfigError::schema(source, &err).at_offset(text, err.inner().span().map(|s| s.start))
    })?;
    let table: Table =
        toml::from_str(text).map_err(|err| ConfigError::syntax(source, text, &err))?;
    let mut origins = BTreeMap::new();
    record_origins(document.get_ref(), "", source, text, &mut origins);
    Ok(Layer { table, origins })
}

/// Records the position of every leaf value of `table` under its dotted key.
fn record_origins(
    table: &DeTable<'_>,
    prefix: &str,
    source: &str,
    text: &str,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        match value.get_ref() {
            DeValue::Table(inner) => record_origins(inner, &path, source, text, origins),
            _ => {
                let (line, column) = line_column(text, value.span().start);
                let origin = Origin {
                    source: source.to_owned(),
                    line: Some(line),
                    column: Some(column),
                };
                origins.insert(path, origin);
            }
        }
    }
}

/// Turns the merged layers into a checked [`Config`], blaming the source of a bad value.
fn finish(merged: &Merged) -> Result<Config, ConfigError> {
    let config = serde_path_to_error::deserialize::<_, Config>(Value::Table(merged.table.clone()))
        .map_err(|err| {
            let error = ConfigError::schema(DEFAULTS_SOURCE, &err);
            let origin = error
                .field
                .as_deref()
                .and_then(|field| merged.origin_of(field));
            blame(error, origin)
        })?;
    validate(&config).map_err(|invalid| {
        let origin = merged
            .origin_of(invalid.field)
            .or_else(|| {
                invalid
                    .within
                    .as_deref()
                    .and_then(|table| merged.origin_within(table))
            })
            .or_else(|| invalid.related.and_then(|field| merged.origin_of(field)));
        let error = ConfigError {
            field: Some(invalid.within.unwrap_or_else(|| invalid.field.to_owned())),
            ..ConfigError::new(ErrorKind::Invalid, DEFAULTS_SOURCE, invalid.reason)
        };
        blame(error, origin)
    })?;
    Ok(config)
}

/// Points `error` at `origin`, when known.
fn blame(error: ConfigError, origin: Option<&Origin>) -> ConfigError {
    match origin {
        Some(origin) => ConfigError {
            source: origin.source.clone(),
            line: origin.line,
            column: origin.column,
            ..error
        },
        None => error,
    }
}

fn read_error(path: &Path, err: &io::Error) -> ConfigError {
    ConfigError::new(
        ErrorKind::Read,
        &path.display().to_string(),
        format!("cannot read: {err}"),
    )
}

fn list_error(dir: &Path, err: &io::Error) -> ConfigError {
    ConfigError::new(
        ErrorKind::Read,
        &dir.display().to_string(),
        format!("cannot list: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::parse_override;
    use crate::schema::LogLevel;
    use std::fs;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }

        fn sources(&self) -> Sources {
            Sources {
                main: self.dir.path().join("basis.toml"),
                ..Sources::default()
            }
        }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nothing_present_gives_defaults() {
        let fx = Fixture::new();
        let loaded = load(&fx.sources()).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.files.is_empty());
        assert!(loaded.origins.is_empty());
    }

    #[test]
    fn layers_apply_in_order() {
        let fx = Fixture::new();
        let main = fx.write(
            "basis.toml",
            "[store]\nquota_mib = 1\nreaders = 1\ncache_mib = 1\nwrite_batch = 1\n[node]\nname = \"main\"\n",
        );
        // Sorted by file name: 10 before 20, whatever order they were written in.
        let d20 = fx.write(
            "conf.d/20-late.toml",
            "[store]\nreaders = 3\ncache_mib = 3\n",
        );
        let d10 = fx.write(
            "conf.d/10-early.toml",
            "[store]\nreaders = 2\ncache_mib = 2\nwrite_batch = 2\n",
        );
        fx.write("conf.d/notes.txt", "not = toml [");
        fx.write("conf.d/.10-early.toml.swp", "junk");
        let mut sources = fx.sources();
        sources.env = pairs(&[
            ("BASIS_STORE_CACHE_MIB", "4"),
            ("BASIS_STORE_WRITE_BATCH", "4"),
        ]);
        sources.overrides = pairs(&[("store.write_batch", "5")]);
        let loaded = load(&sources).unwrap();

        assert_eq!(loaded.files, [main.clone(), d10, d20.clone()]);
        let store = &loaded.config.store;
        assert_eq!(
            (
                store.quota_mib,
                store.readers,
                store.cache_mib,
                store.write_batch
            ),
            (1, 3, 4, 5)
        );
        assert_eq!(loaded.config.node.name, "main");
        let source = |key: &str| loaded.origins[key].source.clone();
        assert_eq!(source("store.quota_mib"), main.display().to_string());
        assert_eq!(source("store.readers"), d20.display().to_string());
        assert_eq!(source("store.cache_mib"), "BASIS_STORE_CACHE_MIB");
        assert_eq!(source("store.write_batch"), "--set store.write_batch");
        assert_eq!(loaded.origins["store.readers"].line, Some(2));
    }

    #[test]
    fn conf_d_can_be_elsewhere() {
        let fx = Fixture::new();
        fx.write("other/a.toml", "[log]\nlevel = \"trace\"\n");
        let sources = Sources {
            conf_d: Some(fx.dir.path().join("other")),
            ..fx.sources()
        };
        assert_eq!(load(&sources).unwrap().config.log.level, LogLevel::Trace);
    }

    #[test]
    fn missing_main_is_fine_unless_required() {
        let fx = Fixture::new();
        fx.write("conf.d/a.toml", "[store]\nreaders = 7\n");
        let loaded = load(&fx.sources()).unwrap();
        assert_eq!(loaded.config.store.readers, 7);

        let required = Sources {
            main_required: true,
            ..fx.sources()
        };
        let err = load(&required).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Read);
        assert_eq!(err.source, required.main.display().to_string());
        assert!(err.to_string().contains(": cannot read: "), "{err}");

        // check_main applies the same rule without loading.
        assert_eq!(fx.sources().check_main(), Ok(()));
        assert_eq!(required.check_main(), Err(err));
    }

    #[test]
    fn check_file_of_missing_file_errors() {
        let err = check_file(Path::new("/nonexistent/basis-x.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/basis-x.toml: cannot read: "),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_names_field_file_and_line() {
        let fx = Fixture::new();
        fx.write("basis.toml", "[store]\nreaders = 2\n");
        let path = fx.write("conf.d/10-pi.toml", "# pi\n[store]\n\nquota = 5\n");
        let err = load(&fx.sources()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownField);
        assert_eq!(err.field.as_deref(), Some("store.quota"));
        assert_eq!((err.line, err.column), (Some(4), Some(1)));
        let shown = err.to_string();
        let prefix = format!(
            "{}:4:1: unknown field `quota` in [store], expected ",
            path.display()
        );
        assert!(shown.starts_with(&prefix), "{shown}");
        assert!(shown.contains("quota_mib"), "{shown}");
    }

    #[test]
    fn unknown_section_is_reported() {
        let err = parse_str("[stor]\nreaders = 1\n", "x.toml").unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownField);
        assert!(
            err.to_string()
                .starts_with("x.toml:1:2: unknown section `stor`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_field_path_and_position() {
        let err = parse_str(
            "[node]\n\n[store]\nquota_mib = \"lots\"\n",
            "/etc/basis/conf.d/10-pi.toml",
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::WrongType);
        assert_eq!(
            err.to_string(),
            "/etc/basis/conf.d/10-pi.toml:4:13: store.quota_mib: invalid type: string \"lots\", expected u64"
        );
    }

    #[test]
    fn bad_log_level_is_invalid() {
        let err = parse_str("[log]\nlevel = \"loud\"\n", "f.toml").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(err.field.as_deref(), Some("log.level"));
        assert!(
            err.to_string()
                .starts_with("f.toml:2:9: log.level: unknown variant `loud`"),
            "{err}"
        );
    }

    #[test]
    fn broken_syntax_has_position() {
        let err = parse_str("[store]\nreaders = \n", "b.toml").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Syntax);
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().starts_with("b.toml:2:"), "{err}");
        assert!(!err.to_string().contains('\n'));

        let err = parse_str("[store\n", "c.toml").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Syntax);
        assert!(err.to_string().starts_with("c.toml:1:7: "), "{err}");
    }

    #[test]
    fn range_error_names_the_source_that_set_it() {
        let fx = Fixture::new();
        fx.write("basis.toml", "[store]\nreaders = 4\n");
        let env = pairs(&[("BASIS_STORE_READERS", "0")]);
        let err = load(&Sources {
            env,
            ..fx.sources()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "BASIS_STORE_READERS: store.readers: must be between 1 and 64, got 0"
        );

        let file = fx.write("conf.d/50.toml", "[store]\n  readers = 99\n");
        let err = load(&fx.sources()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2:13: store.readers: must be between 1 and 64, got 99",
                file.display()
            )
        );

        let overrides = pairs(&[("store.readers", "65")]);
        let err = load(&Sources {
            overrides,
            ..fx.sources()
        })
        .unwrap_err();
        assert_eq!(err.source, "--set store.readers");
    }

    #[test]
    fn cross_field_error_blames_the_field_that_was_set() {
        let err = parse_str("[store]\nwrite_batch = 2000\n", "q.toml").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("store.write_queue"));
        assert_eq!((err.source.as_str(), err.line), ("q.toml", Some(2)));

        // Spread over layers: each file alone is fine, and the merge is checked.
        let fx = Fixture::new();
        fx.write("basis.toml", "[store]\nwrite_batch = 2000\n");
        fx.write("conf.d/a.toml", "[store]\nwrite_queue = 4000\n");
        assert_eq!(load(&fx.sources()).unwrap().config.store.write_queue, 4000);
    }

    #[test]
    fn env_is_parsed_and_checked() {
        let fx = Fixture::new();
        let env = pairs(&[
            ("BASIS_STORE_QUOTA_MIB", "512"),
            ("BASIS_NODE_DATA_DIR", "/x"),
            ("BASIS_NODE_NAME", "field post 7"),
            ("BASIS_LOG_LEVEL", "debug"),
            ("BASIS_CONFIG", "/elsewhere.toml"),
            ("BASIS_TEST_X", "whatever"),
        ]);
        let config = load(&Sources {
            env,
            ..fx.sources()
        })
        .unwrap()
        .config;
        assert_eq!(config.store.quota_mib, 512);
        assert_eq!(config.node.data_dir, PathBuf::from("/x"));
        assert_eq!(config.node.name, "field post 7");
        assert_eq!(config.log.level, LogLevel::Debug);

        let env = pairs(&[("BASIS_STORE_FOO", "1")]);
        let err = load(&Sources {
            env,
            ..fx.sources()
        })
        .unwrap_err();
        assert_eq!(err.source, "BASIS_STORE_FOO");
        assert_eq!(err.kind, ErrorKind::UnknownField);

        let env = pairs(&[("BASIS_LOG_LEVEL", "loud")]);
        let err = load(&Sources {
            env,
            ..fx.sources()
        })
        .unwrap_err();
        assert_eq!(err.source, "BASIS_LOG_LEVEL");
        assert_eq!(err.field.as_deref(), Some("log.level"));
    }

    #[test]
    fn defaults_file_loads_as_main() {
        let fx = Fixture::new();
        fx.write("basis.toml", crate::DEFAULTS_TOML);
        let loaded = load(&Sources {
            main_required: true,
            ..fx.sources()
        })
        .unwrap();
        assert_eq!(loaded.config, Config::default());
        // One origin per key of the defaults file.
        assert_eq!(loaded.origins.len(), 42);
    }

    #[test]
    fn any_text_gives_a_result_not_a_panic() {
        let text = crate::DEFAULTS_TOML;
        let cuts = (0..=text.len()).filter(|&i| text.is_char_boundary(i));
        for cut in cuts {
            let _ = parse_str(&text[..cut], "cut.toml");
            let _ = parse_str(&format!("{}\u{0}é\"[", &text[..cut]), "junk.toml");
        }
        for raw in [
            "",
            "=",
            "\"",
            "[[store]]",
            "[store]\nreaders = 1e999",
            "a.b.c.d = 1",
        ] {
            let _ = parse_str(raw, "raw.toml");
            let _ = parse_override(raw);
            let overrides = pairs(&[(raw, raw)]);
            let _ = load(&Sources {
                main: "/nonexistent/b.toml".into(),
                overrides,
                ..Sources::default()
            });
        }
    }

    #[test]
    fn default_sources_use_etc() {
        let sources = Sources::default();
        assert_eq!(sources.main, PathBuf::from("/etc/basis/basis.toml"));
        assert_eq!(sources.conf_d_dir(), PathBuf::from("/etc/basis/conf.d"));
    }
}
