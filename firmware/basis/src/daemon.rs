//! `basis run`: start the node, serve until SIGTERM or SIGINT, stop cleanly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use basis_store::{ExpiryPolicy, Store, StoreOptions};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::node::Node;
use crate::settings::Settings;
use crate::{api, control, datadir, federation, files, identity, notify};
use basis_net::Federation;

/// How long shutdown waits for replies in flight before closing the store anyway.
const DRAIN: Duration = Duration::from_secs(5);

fn store_options(settings: &Settings) -> StoreOptions {
    let s = &settings.config.store;
    StoreOptions {
        cache_mib: s.cache_mib,
        readers: s.readers,
        write_batch: s.write_batch,
        write_queue: s.write_queue,
        commit_gap: Duration::from_millis(s.commit_gap_ms),
    }
}

fn expiry_policy(settings: &Settings, node: &Node) -> ExpiryPolicy {
    let s = &settings.config.store;
    ExpiryPolicy {
        now: node.now(),
        wall_millis: crate::node::wall_millis(),
        default_max_age_ms: (s.retention_days > 0)
            .then(|| u64::from(s.retention_days) * 24 * 3600 * 1000),
        quota_bytes: Some(s.quota_mib.saturating_mul(1024 * 1024)),
    }
}

/// Host names that many boards share out of the box: a node on one of them is named
/// `<host name>-<first 4 hex of its id>` so that boards flashed from one image differ.
const GENERIC_HOST_NAMES: [&str; 10] = [
    "localhost",
    "basis",
    "raspberrypi",
    "raspberry",
    "pi",
    "debian",
    "ubuntu",
    "dietpi",
    "armbian",
    "orangepi",
];

/// The node's name: `node.name` when set, else the host name, made unique with the start of
/// the node id when the host name is one that many boards share (a Yocto machine name such
/// as `raspberrypi4-64` counts too).
fn node_name(settings: &Settings, id: &basis_core::NodeId) -> String {
    let name = settings.config.node.name.trim();
    if !name.is_empty() {
        return name.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    default_name(&host, id)
}

fn default_name(host: &str, id: &basis_core::NodeId) -> String {
    let lower = host.to_ascii_lowercase();
    let generic = lower.is_empty()
        || GENERIC_HOST_NAMES.contains(&lower.as_str())
        || lower.starts_with("raspberrypi")
        || lower.starts_with("qemu");
    if !generic {
        return host.to_string();
    }
    let short: String = id.to_string().chars().take(4).collect();
    let base = if host.is_empty() { "basis" } else { host };
    format!("{base}-{short}")
}

/// Runs the node until a stop signal.
pub async fn run(settings: Settings) -> Result<()> {
    // Files the node makes (database, socket, key) are for its own user only.
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(0o077) };
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;

    datadir::prepare(&settings.data_dir)?;
    let lock = datadir::lock(&settings.data_dir)?;
    // Everything that can refuse the start comes before the key and the database are made:
    // a node that cannot run leaves no identity behind.
    let federation_plan = federation::plan(&settings)?;
    let api_listener = if settings.config.api.enabled {
        Some(api::bind(&settings.config.api).await?)
    } else {
        None
    };
    if federation_plan.is_some() {
        federation::check_port(&settings)?;
    }
    let key = identity::load_or_create(&settings.key_file())?;

    let db = settings.db_file();
    let options = store_options(&settings);
    let store = tokio::task::spawn_blocking(move || Store::open(&db, &options))
        .await
        .context("the store task failed")?
        .with_context(|| format!("cannot open the database {}", settings.db_file().display()))?;

    let node_files = files::open(&settings.data_dir, &settings.config.files)?;

    let listener = control::server::bind(&settings.socket)?;
    let mut listening = vec![format!("unix:{}", settings.socket.display())];
    if let Some(l) = &api_listener {
        let addr = l.local_addr().context("the API listener has no address")?;
        listening.push(format!("http://{addr}"));
    }
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let node_id = key.id();
    let name = node_name(&settings, &node_id);
    let api_addr = api_listener.as_ref().and_then(|l| l.local_addr().ok());
    // An API on loopback serves this machine only: it is not announced on the LAN.
    let api_port = api_addr.filter(|a| !a.ip().is_loopback()).map(|a| a.port());
    let federation = match federation_plan {
        Some(plan) => {
            let mut fed = plan.into_settings(&settings, key, &name);
            fed.api_port = api_port;
            let f = Federation::start(
                fed,
                store.writer(),
                store.readers(),
                stop.clone(),
                tasks.clone(),
            )
            .context("cannot start federation")?;
            listening.push(format!("quic:{}", f.local_addr()));
            f.attach_files(
                node_files.blobs.clone(),
                files::policy_fn(settings.config.files.clone(), store.readers()),
            );
            // Without a secret there is no tag: nodes are admitted by id only.
            let tag = match f.tag() {
                "" if settings.config.federation.allow.is_empty() => {
                    "no tag (upstream bridge only)".to_string()
                }
                "" => "no tag (allow-list only)".to_string(),
                tag => format!("tag {tag}"),
            };
            log::info!(
                "federation: {tag}, QUIC on {}{}",
                f.local_addr(),
                if settings.config.federation.mdns {
                    ", announced over mDNS"
                } else {
                    ""
                }
            );
            Some(Arc::new(f))
        }
        None => {
            log::info!(
                "federation is off: set federation.secret (or federation.allow) to replicate with other nodes"
            );
            None
        }
    };
    let node = Arc::new(
        Node::new(
            node_id,
            name,
            settings.data_dir.clone(),
            listening,
            &store,
            federation.clone(),
        )
        .with_files(node_files),
    );

    tasks.spawn(control::server::serve(
        listener,
        node.clone(),
        stop.clone(),
        tasks.clone(),
    ));
    // Without federation nothing else announces the node: announce its client API, so that
    // chat clients on the LAN find it with no --node.
    let api_announcement = match (&federation, api_addr) {
        (None, Some(addr)) if settings.config.federation.mdns && !addr.ip().is_loopback() => {
            match basis_net::Discovery::announce_api(node_id, &node.name, addr) {
                Ok(d) => {
                    log::info!("client API announced over mDNS");
                    Some(d)
                }
                Err(e) => {
                    log::warn!(
                        "cannot announce the client API over mDNS ({e}); chat clients need --node URL"
                    );
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(l) = api_listener {
        if let Ok(addr) = l.local_addr() {
            let urls = api::reachable_urls(addr);
            if let Some(first) = urls.first() {
                log::info!("client API on {first}v1/ (OpenAPI at /v1/openapi.json)");
            }
            log::info!("chat clients reach this node at {}", urls.join(" "));
        }
        tasks.spawn(api::serve(
            l,
            node.clone(),
            settings.config.api.clone(),
            stop.clone(),
        ));
    } else {
        log::info!("the client API is off (api.enabled = false)");
    }
    tasks.spawn(expiry_loop(settings.clone(), node.clone(), stop.clone()));
    let status = node.status().await;
    log::info!(
        "basis {} node {} ({}) started",
        status.version,
        node.id.short(),
        node.name
    );
    for file in &settings.files {
        log::info!("configuration: {}", file.display());
    }
    log::info!("data directory: {}", settings.data_dir.display());
    log::info!(
        "database: {} ({} events, {} bytes)",
        settings.db_file().display(),
        status.events,
        status.store_bytes
    );
    log::info!("control socket: {}", settings.socket.display());
    // Admin commands run without flags find this node through the pointer, even when it uses
    // another data directory than theirs.
    let pointer = crate::running::dir(&|name| std::env::var(name).ok(), crate::settings::is_root())
        .and_then(|dir| {
            crate::running::Published::write(&dir, &settings.data_dir, &settings.socket)
                .map_err(|e| log::debug!("no pointer for admin commands: {e:#}"))
                .ok()
        });
    if let Some(p) = &pointer {
        log::debug!(
            "admin commands find this node through {}",
            p.path().display()
        );
    }
    log::info!("ready");
    notify::ready(&format!("serving {} events", status.events));
    if let Some(period) = notify::watchdog_period() {
        tasks.spawn(watchdog_loop(period, node.clone(), stop.clone()));
    }

    let why = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    log::info!("{why}: stopping");
    notify::stopping();
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
        log::warn!("some requests were still running after {DRAIN:?}; closing anyway");
    }
    if let Some(f) = &federation {
        f.shutdown();
    }
    if let Some(d) = api_announcement {
        d.stop();
    }
    drop(federation);
    drop(node);
    tokio::task::spawn_blocking(move || store.close())
        .await
        .context("the store task failed")?
        .context("cannot close the database cleanly")?;
    let _ = std::fs::remove_file(&settings.socket);
    drop(pointer);
    drop(lock);
    log::info!("stopped; every acknowledged event is on disk");
    Ok(())
}

async fn expiry_loop(settings: Settings, node: Arc<Node>, stop: CancellationToken) {
    let period = Duration::from_secs(settings.config.store.expire_interval_secs.max(10));
    loop {
        match node.writer().expire(expiry_policy(&settings, &node)).await {
            Ok(r) if r.by_age + r.by_quota > 0 => log::info!(
                "expiry removed {} events by age and {} for the quota",
                r.by_age,
                r.by_quota
            ),
            Ok(_) => {}
            Err(e) => log::error!("expiry failed: {e}"),
        }
        // A file's chunks expire with (or before) the last message that names it.
        if let Some(f) = node.files() {
            let (readers, blobs) = (node.readers().clone(), f.blobs.clone());
            match tokio::task::spawn_blocking(move || files::retain(&readers, &blobs)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(freed)) => log::info!("expiry removed {freed} bytes of files"),
                Ok(Err(e)) => log::error!("file expiry failed: {e:#}"),
                Err(e) => log::error!("the file expiry task failed: {e}"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

/// Pings systemd's watchdog only while the writer answers: a stuck writer (a hung disk)
/// gets the service restarted.
async fn watchdog_loop(period: Duration, node: Arc<Node>, stop: CancellationToken) {
    loop {
        let alive = tokio::time::timeout(period, node.writer().insert(Vec::new()))
            .await
            .is_ok_and(|r| r.is_ok());
        if alive {
            notify::watchdog();
        } else {
            log::error!("the store writer did not answer within {period:?}");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::default_name;
    use basis_core::NodeId;

    #[test]
    fn boards_with_a_generic_host_name_get_unique_names() {
        let a = NodeId([0xab; 32]);
        let b = NodeId([0xcd; 32]);
        assert_eq!(default_name("raspberrypi", &a), "raspberrypi-abab");
        assert_ne!(
            default_name("raspberrypi", &a),
            default_name("raspberrypi", &b)
        );
        assert_eq!(default_name("raspberrypi4-64", &a), "raspberrypi4-64-abab");
        assert_eq!(default_name("localhost", &b), "localhost-cdcd");
        assert_eq!(default_name("", &a), "basis-abab");
        // A name somebody chose is kept as it is.
        assert_eq!(default_name("field-kit-7", &a), "field-kit-7");
        assert_eq!(default_name("basis-3f2a", &a), "basis-3f2a");
    }
}
