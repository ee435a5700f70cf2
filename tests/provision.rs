//! First-boot provisioning as a field team meets it: a `basis.toml` on the boot partition is
//! imported into the drop-in directory at `basis run` and removed from the boot partition; a
//! file with an error stops the node and stays where it is. `BASIS_FIRST_BOOT_FILE` points the
//! daemon at a stand-in for `/boot/firmware/basis.toml` inside the test's directory.

use crate::common;

use std::fs;
use std::path::PathBuf;

use common::*;

/// A line only the boot file holds, to prove its contents never reach the log.
const MARKER: &str = "# marker-6f1c2a: stands in for a secret";

/// A node and a stand-in boot partition holding `text` as `basis.toml`.
fn node_with_boot_file(text: &str) -> (Node, PathBuf) {
    let node = Node::new();
    let boot = node.root().join("boot");
    fs::create_dir(&boot).unwrap();
    let file = boot.join("basis.toml");
    fs::write(&file, text).unwrap();
    (node, file)
}

#[test]
fn valid_file_is_imported_takes_effect_and_leaves_the_boot_partition() {
    let contents = format!("{MARKER}\n[node]\nname = \"field-kit-7\"\n");
    let (mut node, boot_file) = node_with_boot_file(&contents);
    let installed = node.root().join("conf.d/00-first-boot.toml");

    let mut cmd = node.command();
    cmd.env("BASIS_FIRST_BOOT_FILE", &boot_file).arg("run");
    node.start_command(cmd);
    let status = node.status_json();
    assert_eq!(status["name"], "field-kit-7", "status: {status}");
    assert!(
        !boot_file.exists(),
        "the boot-partition file is still there"
    );
    assert_eq!(fs::read_to_string(&installed).unwrap(), contents);
    assert_eq!(mode_of(&installed), 0o600);
    let log = node.stop();
    assert!(
        log.contains("imported") && log.contains(&boot_file.display().to_string()),
        "the import is not logged:\n{log}"
    );
    assert!(
        !log.contains("marker-6f1c2a"),
        "the file's contents were logged:\n{log}"
    );

    // It stays in effect once the boot file is gone, and shows as a configuration file.
    node.start();
    assert_eq!(node.status_json()["name"], "field-kit-7");
    node.stop();
    let out = node.cli_ok(&["config", "show", "--json"]);
    assert!(text(&out.stdout).contains("00-first-boot.toml"));
}

#[test]
fn invalid_file_stops_the_node_and_stays_in_place() {
    let contents = format!("{MARKER}\n[node]\nname = \"field-kit-7\"\nnmae = \"typo\"\n");
    let (node, boot_file) = node_with_boot_file(&contents);

    let mut cmd = node.command();
    cmd.env("BASIS_FIRST_BOOT_FILE", &boot_file).arg("run");
    let out = run_with_timeout(cmd, REFUSE_TIMEOUT);
    assert_error_exit(&out, "basis run with an invalid first-boot file");
    let stderr = text(&out.stderr);
    assert!(names_file_at_line(&stderr, &boot_file, 4), "{stderr}");
    assert!(stderr.contains("nmae"), "the field is not named: {stderr}");
    assert!(
        !stderr.contains("marker-6f1c2a"),
        "contents shown: {stderr}"
    );

    assert_eq!(fs::read_to_string(&boot_file).unwrap(), contents);
    assert!(!node.root().join("conf.d").exists(), "conf.d touched");
    assert!(!node.data.exists(), "the node started anyway");
}

#[test]
fn provision_imports_and_exits_without_starting_the_node() {
    let (node, boot_file) = node_with_boot_file("[store]\nreaders = 1\n");

    let mut cmd = node.command();
    cmd.env("BASIS_FIRST_BOOT_FILE", &boot_file)
        .arg("provision");
    let out = run_with_timeout(cmd, REFUSE_TIMEOUT);
    assert_success(&out, "basis provision");
    assert!(!boot_file.exists());
    assert!(node.root().join("conf.d/00-first-boot.toml").exists());
    assert!(!node.data.exists(), "basis provision started the node");

    // With nothing to import it exits as well, successfully.
    let mut cmd = node.command();
    cmd.env("BASIS_FIRST_BOOT_FILE", &boot_file)
        .arg("provision");
    assert_success(
        &run_with_timeout(cmd, REFUSE_TIMEOUT),
        "second basis provision",
    );
    assert!(!node.data.exists());
}

#[test]
fn provision_and_config_check_agree_on_a_missing_config_file() {
    let (node, boot_file) = node_with_boot_file("[store]\nreaders = 1\n");
    let missing = node.root().join("etc/basis.toml");
    let missing_text = missing.display().to_string();

    // A main file named by --config that is not there is an error for both, naming it.
    for args in [&["provision"][..], &["config", "check"][..]] {
        let mut cmd = clean_command();
        cmd.env("BASIS_FIRST_BOOT_FILE", &boot_file)
            .arg("--config")
            .arg(&missing)
            .args(args);
        let out = run_with_timeout(cmd, REFUSE_TIMEOUT);
        assert_error_exit(
            &out,
            &format!("basis --config <missing> {}", args.join(" ")),
        );
        assert!(
            text(&out.stderr).contains(&missing_text),
            "basis {args:?}: the error does not name {missing_text}\n{}",
            describe(&out)
        );
    }
    // Nothing was imported beside the missing file.
    assert_eq!(
        fs::read_to_string(&boot_file).unwrap(),
        "[store]\nreaders = 1\n"
    );
    assert!(!node.root().join("etc").exists(), "conf.d made anyway");

    // The default main file missing is fine for both (when this machine has none).
    if !std::path::Path::new("/etc/basis").exists() {
        for args in [&["provision"][..], &["config", "check"][..]] {
            let mut cmd = clean_command();
            cmd.env("BASIS_FIRST_BOOT_FILE", "").args(args);
            assert_success(
                &run_with_timeout(cmd, REFUSE_TIMEOUT),
                &format!("basis {} with no configuration file", args.join(" ")),
            );
        }
    }
}
