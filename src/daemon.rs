//! Wiring the daemon: open the journal, start the writer and projectors, bootstrap the owner on
//! first start, serve HTTP, and on shutdown stop in order — listener, in-flight requests,
//! projectors, then the writer after it drained its queue — so nothing acknowledged is lost.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::api::{self, AppState};
use crate::clock;
use crate::config::Config;
use crate::domain::files::FileSigner;
use crate::domain::internal::{self, KeyRecord, UserRecord};
use crate::domain::outgoing::Outgoing;
use crate::domain::permission::PermissionSet;
use crate::domain::policy::{Policy, PolicyHandle, PolicyRecord};
use crate::ids;
use crate::ifttt;
use crate::journal::{reader, schema, Db, JournalError, Writer};
use crate::loops::{LoopGuard, MAX_DETECTIONS};
use crate::projectors::{
    self, customers::CustomersProjector, hooks::HooksProjector, registry::RegistryProjector,
};
use crate::replay::{self, worker::ReplayParts};
use crate::sender::resolve::{Destinations, SystemLookup};
use crate::sender::{
    self, client::HttpClient, progress::Progress, signing::SigningKeyFile, SenderParts,
};
use crate::shutdown::{self, ShutdownSignal};
use crate::systemd;

pub const OWNER_KEY_FILE: &str = "owner.key";
/// How long start-up waits for projectors to catch up with the journal.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the journal in {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("start-up: {0}")]
    Startup(String),
}

fn ensure_data_dir(dir: &Path) -> Result<(), DaemonError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| DaemonError::DataDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Opens the database in `config.data_dir`, creating the directory if needed.
pub fn open_db(config: &Config) -> Result<crate::journal::Db, DaemonError> {
    ensure_data_dir(&config.data_dir)?;
    schema::open(&config.data_dir, config.storage.cache_size_bytes).map_err(|e| DaemonError::Open {
        path: config.data_dir.clone(),
        message: e.to_string(),
    })
}

/// Runs the daemon until SIGTERM/SIGINT. Blocks the calling thread.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let (signal, _) = shutdown::channel();
    run_until(config, signal, true)
}

/// Runs the daemon until `signal` fires (and, if `os_signals`, on SIGTERM/SIGINT too).
pub fn run_until(
    config: Config,
    signal: ShutdownSignal,
    os_signals: bool,
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let db = Arc::new(open_db(&config)?);
    let head = reader::head(&db)?;
    let head_appended_at_ms = match reader::get_by_offset(&db, head)? {
        Some(e) => e.appended_at_ms,
        None => 0,
    };
    let (writer, writer_thread) = Writer::start(
        db.clone(),
        head,
        head_appended_at_ms,
        config.storage.min_free_bytes,
    );
    let stop_projectors = Arc::new(AtomicBool::new(false));
    let (registry_projector, registry) = RegistryProjector::load(&db)?;
    let (registry_status, registry_thread) = projectors::spawn(
        registry_projector,
        db.clone(),
        writer.clone(),
        stop_projectors.clone(),
    )?;
    let (hooks_projector, hooks) = HooksProjector::load(&db)?;
    let (hooks_status, hooks_thread) = projectors::spawn(
        hooks_projector,
        db.clone(),
        writer.clone(),
        stop_projectors.clone(),
    )?;
    let (customers_status, customers_thread) = projectors::spawn(
        CustomersProjector::default(),
        db.clone(),
        writer.clone(),
        stop_projectors.clone(),
    )?;
    let signing = Arc::new(sender::load_signing_key(&config)?);
    let destinations = Destinations::new(
        Arc::new(PolicyHandle::new(load_policy(&db, &config)?)),
        Arc::new(SystemLookup),
    );
    let loops = Arc::new(LoopGuard::new(
        config.loops.window_ms,
        config.loops.threshold,
    ));
    loops.restore(load_loops(&db)?);
    let outgoing = Arc::new(Outgoing {
        files: FileSigner::new(
            files_key(&signing),
            &config.public_base_url,
            config.files.url_ttl_ms,
        ),
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rev23-io")
        .build()
        .map_err(|e| DaemonError::Startup(format!("tokio runtime: {e}")))?;
    let served = runtime.block_on(async {
        let (progress, recorder) = Progress::start(&db, writer.clone())?;
        let state = Arc::new(AppState {
            config: config.clone(),
            db: db.clone(),
            writer: writer.clone(),
            registry,
            registry_status: registry_status.clone(),
            hooks: hooks.clone(),
            hooks_status: hooks_status.clone(),
            customers_status: customers_status.clone(),
            projectors: vec![registry_status, hooks_status, customers_status],
            progress: progress.clone(),
            signing,
            outgoing,
            pull_leases: Default::default(),
            ifttt_identities: Default::default(),
            rate_limiter: Default::default(),
            registry_lock: tokio::sync::Mutex::new(()),
            hooks_lock: tokio::sync::Mutex::new(()),
            customers_lock: tokio::sync::Mutex::new(()),
            idempotency: Default::default(),
            loops,
            destinations,
            started: AtomicBool::new(false),
            backups: Default::default(),
        });
        let served = serve(state, signal, os_signals).await;
        // Lanes stopped (they heard the same signal); write what the recorder holds.
        progress.stop().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), recorder).await;
        served
    });
    runtime.shutdown_timeout(Duration::from_secs(2));

    // In-flight requests and deliveries are done; stop projectors after their current chunk,
    // then let the writer commit everything still queued and exit.
    stop_projectors.store(true, Ordering::Release);
    for (name, thread) in [
        ("registry", registry_thread),
        ("hooks", hooks_thread),
        ("customers", customers_thread),
    ] {
        if thread.join().is_err() {
            tracing::error!(projector = name, "projector panicked");
        }
    }
    writer.stop();
    if writer_thread.join().is_err() {
        tracing::error!("journal writer panicked");
    }
    tracing::info!(head = writer.head(), "stopped");
    served
}

async fn serve(
    state: Arc<AppState>,
    signal: ShutdownSignal,
    os_signals: bool,
) -> Result<(), DaemonError> {
    let listener = tokio::net::TcpListener::bind(&state.config.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: state.config.listen.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| DaemonError::Startup(format!("local address: {e}")))?;
    if os_signals {
        tokio::spawn(shutdown::fire_on_os_signal(signal.clone()));
    }
    // Auth needs the registry, the API the hooks: catch up with what the journal held at start.
    let head = state.writer.head();
    // Customer writes look up external ids in the customer view: it must be current too.
    let caught_up = state.registry_status.wait_for(head, CATCH_UP_TIMEOUT).await
        && state.hooks_status.wait_for(head, CATCH_UP_TIMEOUT).await
        && state
            .customers_status
            .wait_for(head, CATCH_UP_TIMEOUT)
            .await;
    if !caught_up {
        return Err(DaemonError::Startup(
            "the projections did not catch up with the journal".into(),
        ));
    }
    bootstrap_owner(&state).await?;
    state.started.store(true, Ordering::Release);
    tracing::info!(%local, head, "listening");
    // A machine-readable line on stdout for scripts and tests that ask for port 0.
    println!("rev23-webhooks listening on http://{local}");
    let _ = std::io::stdout().flush();
    let sender_alive = Arc::new(AtomicBool::new(true));
    let sender_guard = systemd::watchdog::AliveGuard(sender_alive.clone());
    let sender = tokio::spawn(sender::run(
        SenderParts {
            db: state.db.clone(),
            writer: state.writer.clone(),
            hooks: state.hooks.clone(),
            registry: state.registry.clone(),
            signing: state.signing.clone(),
            outgoing: state.outgoing.clone(),
            progress: state.progress.clone(),
            config: state.config.clone(),
            destinations: state.destinations.clone(),
            loops: state.loops.clone(),
        },
        signal.listener(),
    ));
    // The guard leaves with the sender's task, however it ends.
    let sender = tokio::spawn(async move {
        let _alive = sender_guard;
        sender.await
    });
    let replayer = tokio::spawn(replay::worker::run(
        ReplayParts {
            db: state.db.clone(),
            writer: state.writer.clone(),
            hooks: state.hooks.clone(),
            hooks_status: state.hooks_status.clone(),
            registry: state.registry.clone(),
            progress: state.progress.clone(),
        },
        signal.listener(),
    ));
    let retention = tokio::spawn(crate::retention::run(state.clone(), signal.listener()));
    let realtime = realtime_parts(&state)?
        .map(|parts| tokio::spawn(ifttt::realtime::run(parts, signal.listener())));
    systemd::announce_ready(
        &format!("listening on http://{local}"),
        state.writer.clone(),
        sender_alive,
        signal.listener(),
    );
    api::server::serve(listener, state, signal.listener()).await;
    // The HTTP side has drained; the sender heard the same signal and drains in parallel.
    let _ = sender.await;
    let _ = replayer.await;
    let _ = retention.await;
    if let Some(realtime) = realtime {
        let _ = realtime.await;
    }
    Ok(())
}

/// The IFTTT realtime notifier's parts, when IFTTT is enabled (a service key is set).
fn realtime_parts(state: &AppState) -> Result<Option<ifttt::realtime::RealtimeParts>, DaemonError> {
    let config = &state.config;
    if config.ifttt.service_key.is_empty() {
        return Ok(None);
    }
    let realtime_url = config
        .ifttt
        .realtime_url
        .parse::<hyper::Uri>()
        .map_err(|e| {
            DaemonError::Startup(format!(
                "ifttt.realtime_url {:?} is not a URL: {e}",
                config.ifttt.realtime_url
            ))
        })?;
    Ok(Some(ifttt::realtime::RealtimeParts {
        db: state.db.clone(),
        writer: state.writer.clone(),
        registry: state.registry.clone(),
        identities: state.ifttt_identities.clone(),
        // The realtime URL is the operator's, but it goes through the same destination policy.
        client: Arc::new(HttpClient::new(
            Duration::from_millis(config.delivery.connect_timeout_ms),
            Duration::from_millis(config.delivery.timeout_ms),
            state.destinations.clone(),
        )),
        service_key: config.ifttt.service_key.clone(),
        realtime_url,
    }))
}

/// The destination policy in force: the newest one journaled by `PUT /v1/policy`, else the
/// config file's.
fn load_policy(db: &Db, config: &Config) -> Result<Policy, DaemonError> {
    let newest = reader::newest_of_type(db, internal::POLICY_SET, 1, 1, |_| true)?;
    let record = match newest.first() {
        Some(entry) => serde_json::from_slice::<PolicyRecord>(&entry.payload)
            .map_err(|e| DaemonError::Startup(format!("journaled policy: {e}")))?,
        None => config.policy.record(),
    };
    Policy::new(record).map_err(|e| DaemonError::Startup(format!("policy: {e}")))
}

/// Loop detections journaled and not cleared (the newest [`MAX_DETECTIONS`]).
fn load_loops(db: &Db) -> Result<Vec<internal::LoopDetected>, DaemonError> {
    let cleared: std::collections::HashSet<String> = reader::newest_of_type(
        db,
        internal::LOOP_CLEARED,
        MAX_DETECTIONS * 4,
        MAX_DETECTIONS * 4,
        |_| true,
    )?
    .iter()
    .filter_map(|e| serde_json::from_slice::<internal::LoopCleared>(&e.payload).ok())
    .map(|c| c.id)
    .collect();
    Ok(reader::newest_of_type(
        db,
        internal::LOOP_DETECTED,
        MAX_DETECTIONS,
        MAX_DETECTIONS * 4,
        |_| true,
    )?
    .iter()
    .filter_map(|e| serde_json::from_slice::<internal::LoopDetected>(&e.payload).ok())
    .filter(|d| !cleared.contains(&d.id))
    .collect())
}

/// On first start (no owner yet): creates the owner user and key, writes the key to
/// `<data-dir>/owner.key` (0600) before journaling it, and prints it once.
async fn bootstrap_owner(state: &AppState) -> Result<(), DaemonError> {
    if state.registry.snapshot().users.values().any(|u| u.owner) {
        return Ok(());
    }
    let now = clock::now_ms();
    let user = UserRecord {
        id: ids::new_id(ids::USER_PREFIX),
        name: "Owner".into(),
        email: None,
        owner: true,
        permissions: PermissionSet::all().names(),
        active: true,
        created_at_ms: now,
        updated_at_ms: now,
    };
    let secret = ids::new_key_secret();
    let key = KeyRecord {
        id: ids::new_id(ids::KEY_PREFIX),
        user_id: user.id.clone(),
        name: "owner".into(),
        prefix: secret.prefix.clone(),
        hash: secret.hash.clone(),
        permissions: None,
        created_at_ms: now,
        revoked_at_ms: None,
    };
    let path = state.config.data_dir.join(OWNER_KEY_FILE);
    write_secret_file(&path, &secret.secret).map_err(|source| DaemonError::DataDir {
        path: path.clone(),
        source,
    })?;
    let origin = crate::journal::Origin::default();
    let events = vec![
        api::registry_change::internal_event(
            internal::USER_UPSERTED,
            &user.id,
            &user,
            origin.clone(),
        ),
        api::registry_change::internal_event(internal::KEY_CREATED, &key.id, &key, origin),
    ];
    api::registry_change::commit(state, events)
        .await
        .map_err(|e| DaemonError::Startup(format!("creating the owner: {}", e.message)))?;
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        // Under systemd stdout goes to the journal, which more people read than the key file.
        println!(
            "created the owner user {} and its API key, in {}",
            user.id,
            path.display()
        );
    } else {
        println!(
            "created the owner user {} and its API key (shown once; also in {}): {}",
            user.id,
            path.display(),
            secret.secret
        );
    }
    Ok(())
}

/// The key that signs file URLs, derived from the daemon's signing key (one secret to back up).
fn files_key(signing: &SigningKeyFile) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(signing.key.to_whsk().as_bytes())
        .expect("any key length");
    mac.update(b"rev23-webhooks files v1");
    mac.finalize().into_bytes().to_vec()
}

/// Writes `contents` to `path` with mode 0600, atomically (temp file, fsync, rename).
fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
