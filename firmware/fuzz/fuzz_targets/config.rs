//! Fuzz target `config`: parsing and checking a configuration file
//! (`basis_config::parse_str`) from arbitrary text: the input as UTF-8 when it is, otherwise
//! converted lossily.
//!
//! Checks, beyond "never panics":
//! - an error that blames the file itself (syntax, unknown field, wrong type, bad value set in
//!   the file) carries a line and a column, and they lie inside the text;
//! - the error renders as one line;
//! - an accepted configuration, written back out as TOML, parses to the same configuration.
#![no_main]

use basis_config::{ErrorKind, parse_str};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_str(&text, ORIGIN) {
        Ok(config) => {
            let written = toml::to_string(&config).expect("a configuration serializes");
            let again = parse_str(&written, "written.toml")
                .unwrap_or_else(|e| panic!("a written configuration is refused: {e}\n{written}"));
            assert_eq!(
                again, config,
                "a configuration changed when written and read back"
            );
        }
        Err(err) => {
            let shown = err.to_string();
            assert!(!shown.contains('\n'), "a multi-line error: {shown:?}");
            if err.kind == ErrorKind::Read {
                panic!("parse_str read something: {err}");
            }
            if err.source == ORIGIN {
                let (Some(line), Some(column)) = (err.line, err.column) else {
                    panic!("an error in the file without a position: {err:?}");
                };
                let lines = text.split('\n').count();
                assert!(
                    line >= 1 && line <= lines,
                    "line {line} of {lines}: {err:?}"
                );
                let width = text
                    .split('\n')
                    .nth(line - 1)
                    .map_or(0, |l| l.chars().count());
                assert!(
                    column >= 1 && column <= width + 1,
                    "column {column} of {width}: {err:?}"
                );
            }
        }
    }
});
