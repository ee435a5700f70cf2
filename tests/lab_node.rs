//! A Basis node running in a host of a network-namespace lab, shared by the lab tests.
// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;

use crate::common::{Node, open_db_ro};
use crate::lab::{Host, Lab};

/// A node of the lab: a [`Node`] (config, data, CLI) whose daemon runs in a lab host.
pub struct LabNode {
    /// The node's configuration, data and CLI.
    pub node: Node,
    /// The lab host it runs in.
    pub host: Host,
}

impl LabNode {
    /// A node in a new host `name`, with this `[federation]` table body.
    pub fn new(lab: &Lab, name: &str, federation: &str) -> LabNode {
        let host = lab.add_host(name);
        let node = Node::with_config_extra(&format!("[federation]\n{federation}\n"));
        LabNode { node, host }
    }

    /// Starts the daemon in its host and waits until it is ready.
    pub fn start(&mut self) {
        self.start_bin(std::path::Path::new(env!("CARGO_BIN_EXE_basis")));
    }

    /// Starts the daemon of the build at `bin` in its host and waits until it is ready.
    pub fn start_bin(&mut self, bin: &std::path::Path) {
        let mut cmd = self.host.command(bin);
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str()
                && (name.starts_with("BASIS_")
                    || name == "NOTIFY_SOCKET"
                    || name == "JOURNAL_STREAM")
            {
                cmd.env_remove(name);
            }
        }
        cmd.env("RUST_LOG", "info");
        cmd.arg("--config").arg(&self.node.config).arg("run");
        self.node.start_command(cmd);
    }

    /// Appends `count` messages through the control socket; returns their ids.
    pub fn append(&self, count: usize, text: &str) -> Vec<String> {
        let n = count.to_string();
        self.node
            .append_json(&["--count", &n, "--text", text])
            .into_iter()
            .map(|a| a.id)
            .collect()
    }

    /// The ids of every event in the node's database.
    pub fn ids(&self) -> BTreeSet<Vec<u8>> {
        let Ok(conn) = std::panic::catch_unwind(|| open_db_ro(&self.node.db_path())) else {
            return BTreeSet::new();
        };
        let mut stmt = match conn.prepare("SELECT id FROM events") {
            Ok(s) => s,
            Err(_) => return BTreeSet::new(),
        };
        stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }
}
