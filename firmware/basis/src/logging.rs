//! Logging: journald under systemd (`JOURNAL_STREAM` set), readable stderr otherwise.

use basis_config::LogLevel;
use log::LevelFilter;

fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

/// Installs the logger once; later calls do nothing.
pub fn init(level: LogLevel) {
    let max = filter(level);
    if systemd_journal_logger::connected_to_journal() {
        let journal = systemd_journal_logger::JournalLog::new()
            .map(|j| j.with_syslog_identifier("basis".to_string()));
        if let Ok(journal) = journal
            && journal.install().is_ok()
        {
            log::set_max_level(max);
            return;
        }
    }
    let _ = env_logger::Builder::new()
        .filter_level(LevelFilter::Warn)
        .filter_module("basis", max)
        .filter_module("basis_store", max)
        .format_target(false)
        .try_init();
}
