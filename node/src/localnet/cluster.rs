//! A cluster of validator processes on this machine: start, stop (SIGTERM),
//! kill (SIGKILL), restart and health-check each `bitcraps start` process.
//!
//! Used by `bitcraps localnet` and by process-level tests (kill -9 and
//! restart, late joiners). Each node runs as
//! `bitcraps --home <home> --log-format json start <extra args>` with stdout
//! and stderr appended to `<home>/node.log`, in this process's environment
//! plus the cluster's extra variables ([`Cluster::set_env`], e.g.
//! `SOFTHSM2_CONF` for validators whose keys are in a SoftHSM2 token).
//!
//! Guarantees:
//! * **No leaked processes.** Dropping the [`Cluster`] SIGKILLs and reaps
//!   every child still running, including while a test panics.
//! * **Bounded waits.** [`Cluster::stop`] waits at most
//!   [`DEFAULT_STOP_TIMEOUT_MS`] (configurable) after SIGTERM, then SIGKILLs;
//!   [`Cluster::wait_ready`] takes a timeout.
//! * **Ctrl-C reaches the controller only.** Children run in their own
//!   process group, so a terminal's Ctrl-C does not kill them behind the
//!   controller's back: `localnet` still compares state roots and then stops
//!   them itself. (If the controller itself is SIGKILLed, the children
//!   survive: without `unsafe` we cannot set a parent-death signal. Their
//!   homes are under the localnet directory and `pkill -f <dir>` finds them.)

use super::client::{http_client, NodeClient};
use super::error::LocalnetError;
use super::LOG_TAIL_LINES;
use crate::api::StatusView;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};

/// How long [`Cluster::stop`] waits after SIGTERM before it SIGKILLs. A
/// validator flushes its database and closes QUIC connections in well
/// under a second; 10 s leaves room for a loaded machine.
pub const DEFAULT_STOP_TIMEOUT_MS: u64 = 10_000;
/// How often exit and readiness are polled.
const POLL_MS: u64 = 50;
/// Name of each node's log file inside its home.
pub const LOG_FILE: &str = "node.log";
/// Most bytes read from the end of a log by [`Cluster::log_tail`].
const LOG_TAIL_MAX_BYTES: u64 = 64 * 1024;

/// One validator of the cluster: where its home is and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub home: PathBuf,
    pub p2p_addr: SocketAddr,
    pub http_addr: SocketAddr,
}

impl From<&crate::home::TestnetNode> for NodeSpec {
    fn from(n: &crate::home::TestnetNode) -> Self {
        NodeSpec {
            name: n.name.clone(),
            home: n.home.clone(),
            p2p_addr: n.p2p_addr,
            http_addr: n.http_addr,
        }
    }
}

#[derive(Debug)]
struct Slot {
    spec: NodeSpec,
    child: Mutex<Option<Child>>,
    /// How the last process of this node ended, once reaped.
    last_exit: Mutex<Option<ExitStatus>>,
}

/// The validator processes of one testnet. See the module docs.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    extra_args: Vec<String>,
    /// Set in every node's environment, on top of this process's.
    extra_env: Vec<(OsString, OsString)>,
    slots: Vec<Slot>,
    http: reqwest::Client,
    stop_timeout_ms: u64,
}

/// Locks a mutex even if a panicking thread poisoned it: the data (a child
/// handle) stays valid, and Drop must still be able to kill the child.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cluster {
    /// Creates a cluster for `testnet` and starts every node.
    pub fn start(
        bin: &Path,
        testnet: &crate::home::Testnet,
        extra_args: &[String],
    ) -> Result<Cluster, LocalnetError> {
        let mut c = Cluster::create(bin, testnet, extra_args)?;
        c.start_all()?;
        Ok(c)
    }

    /// Creates a cluster for `testnet` without starting anything (for late
    /// joiners: start nodes one by one with [`Cluster::start_node`]).
    pub fn create(
        bin: &Path,
        testnet: &crate::home::Testnet,
        extra_args: &[String],
    ) -> Result<Cluster, LocalnetError> {
        let nodes = testnet.nodes.iter().map(NodeSpec::from).collect();
        Cluster::from_nodes(bin, nodes, extra_args)
    }

    /// Creates a cluster from explicit node descriptions, nothing started.
    pub fn from_nodes(
        bin: &Path,
        nodes: Vec<NodeSpec>,
        extra_args: &[String],
    ) -> Result<Cluster, LocalnetError> {
        let http = http_client()?;
        Ok(Cluster {
            bin: bin.to_path_buf(),
            extra_args: extra_args.to_vec(),
            extra_env: Vec::new(),
            slots: nodes
                .into_iter()
                .map(|spec| Slot {
                    spec,
                    child: Mutex::new(None),
                    last_exit: Mutex::new(None),
                })
                .collect(),
            http,
            stop_timeout_ms: DEFAULT_STOP_TIMEOUT_MS,
        })
    }

    /// Sets `name=value` in the environment of every node started from now
    /// on (a later value for the same name replaces the earlier one). For a
    /// PKCS#11 module's own settings, such as SoftHSM2's `SOFTHSM2_CONF`:
    /// never put a secret here, the environment of a process is readable by
    /// its user in `/proc`.
    pub fn set_env(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        let name = name.into();
        let value = value.into();
        match self.extra_env.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.extra_env.push((name, value)),
        }
    }

    /// Changes how long [`Cluster::stop`] waits before SIGKILL.
    pub fn set_stop_timeout_ms(&mut self, timeout_ms: u64) {
        self.stop_timeout_ms = timeout_ms;
    }

    pub fn node_count(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, i: usize) -> Result<&Slot, LocalnetError> {
        self.slots.get(i).ok_or(LocalnetError::NoSuchNode(i))
    }

    /// Node `i`'s description. Panics if `i` is out of range.
    pub fn node(&self, i: usize) -> &NodeSpec {
        &self.slots[i].spec
    }

    pub fn name(&self, i: usize) -> &str {
        &self.slots[i].spec.name
    }

    /// `http://IP:PORT` of node `i`'s API. Panics if `i` is out of range.
    pub fn http_url(&self, i: usize) -> String {
        format!("http://{}", self.slots[i].spec.http_addr)
    }

    /// `<home>/node.log` of node `i`. Panics if `i` is out of range.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.slots[i].spec.home.join(LOG_FILE)
    }

    /// A client for node `i`'s API (shares the cluster's connection pool).
    pub fn client(&self, i: usize) -> NodeClient {
        NodeClient::new(self.http_url(i), self.http.clone())
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) -> Result<(), LocalnetError> {
        for i in 0..self.slots.len() {
            if !self.is_running(i) {
                self.start_node(i)?;
            }
        }
        Ok(())
    }

    /// Starts node `i` (with its existing home). Fails if it is running.
    pub fn start_node(&mut self, i: usize) -> Result<(), LocalnetError> {
        if self.is_running(i) {
            return Err(LocalnetError::AlreadyRunning(self.name(i).to_string()));
        }
        let slot = self.slot(i)?;
        let node = slot.spec.name.clone();
        let log_path = slot.spec.home.join(LOG_FILE);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LocalnetError::io(format!("opening {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| LocalnetError::io(format!("opening {}", log_path.display()), e))?;
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.arg("--home")
            .arg(&slot.spec.home)
            .arg("--log-format")
            .arg("json")
            .arg("start")
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(n, v)| (n, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Own process group: see the module docs (Ctrl-C).
            .process_group(0);
        let child = cmd.spawn().map_err(|source| LocalnetError::Spawn {
            node,
            bin: self.bin.display().to_string(),
            source,
        })?;
        *lock(&slot.child) = Some(child);
        *lock(&slot.last_exit) = None;
        Ok(())
    }

    /// If node `i`'s process has exited, reaps it and returns how it ended.
    fn reap_if_exited(&self, i: usize) -> Option<ExitStatus> {
        let slot = self.slots.get(i)?;
        let mut child = lock(&slot.child);
        let status = match child.as_mut()?.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return None,
            // try_wait only fails if the child was already reaped elsewhere;
            // treat it as gone.
            Err(_) => return lock(&slot.last_exit).to_owned(),
        };
        *child = None;
        *lock(&slot.last_exit) = Some(status);
        Some(status)
    }

    /// True while node `i`'s process runs (reaps it if it exited).
    pub fn is_running(&mut self, i: usize) -> bool {
        self.running(i)
    }

    fn running(&self, i: usize) -> bool {
        self.reap_if_exited(i);
        self.slots
            .get(i)
            .is_some_and(|slot| lock(&slot.child).is_some())
    }

    /// How node `i`'s last process ended, if it ran and ended.
    pub fn last_exit(&self, i: usize) -> Option<ExitStatus> {
        self.reap_if_exited(i);
        self.slots.get(i).and_then(|s| *lock(&s.last_exit))
    }

    /// The OS process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        let slot = self.slots.get(i)?;
        let child = lock(&slot.child);
        child.as_ref().map(Child::id)
    }

    /// SIGKILLs node `i` (like `kill -9`) and reaps it. No-op if not running.
    pub fn kill(&mut self, i: usize) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let mut child = lock(&slot.child);
        if let Some(mut c) = child.take() {
            // Err means it already exited; wait() reaps it either way.
            let _ = c.kill();
            if let Ok(status) = c.wait() {
                *lock(&slot.last_exit) = Some(status);
            }
        }
    }

    /// Stops node `i` gracefully: SIGTERM, then waits up to the stop timeout,
    /// then SIGKILL. Returns the exit status (a clean stop exits 0).
    pub fn stop(&mut self, i: usize) -> Result<ExitStatus, LocalnetError> {
        let name = self.slot(i)?.spec.name.clone();
        if !self.running(i) {
            return Err(LocalnetError::NotRunning(name));
        }
        self.signal_term(i);
        self.wait_exits(&[i]);
        self.kill(i);
        self.last_exit(i).ok_or(LocalnetError::NotRunning(name))
    }

    /// Stops every running node in parallel (SIGTERM to all, one shared
    /// bounded wait, then SIGKILL for stragglers). Returns each node's exit
    /// status (`None` for nodes that were not running).
    pub fn stop_all(&mut self) -> Vec<Option<ExitStatus>> {
        let running: Vec<usize> = (0..self.slots.len()).filter(|i| self.running(*i)).collect();
        for i in &running {
            self.signal_term(*i);
        }
        self.wait_exits(&running);
        (0..self.slots.len())
            .map(|i| {
                if running.contains(&i) {
                    self.kill(i);
                    self.last_exit(i)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Stops node `i` if it runs, then starts it again with the same home.
    pub fn restart(&mut self, i: usize) -> Result<(), LocalnetError> {
        if self.running(i) {
            self.stop(i)?;
        }
        self.start_node(i)
    }

    fn signal_term(&self, i: usize) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let child = lock(&slot.child);
        if let Some(c) = child.as_ref() {
            let pid = rustix::process::Pid::from_child(c);
            // ESRCH (already exited, not yet reaped) is fine: wait reaps it.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }

    /// Waits until all of `nodes` exited or the stop timeout passed. Blocks
    /// the calling thread (in polls of [`POLL_MS`]); callers on an async
    /// runtime accept that stopping takes this thread for a few seconds.
    fn wait_exits(&self, nodes: &[usize]) {
        let polls = self.stop_timeout_ms.div_ceil(POLL_MS).max(1);
        for _ in 0..polls {
            if nodes.iter().all(|i| !self.running(*i)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(POLL_MS));
        }
    }

    /// Polls node `i`'s `/readyz` until it answers 200, the node's process
    /// exits, or `timeout_ms` passes.
    pub async fn wait_ready(&self, i: usize, timeout_ms: u64) -> Result<(), LocalnetError> {
        let slot = self.slot(i)?;
        let client = self.client(i);
        let mut last_reason = String::from("no answer yet");
        let poll = async {
            loop {
                if !self.running(i) {
                    let status = self
                        .last_exit(i)
                        .map_or_else(|| "not started".to_string(), |s| s.to_string());
                    return Err(LocalnetError::NodeExited {
                        node: slot.spec.name.clone(),
                        status,
                        log: self.log_path(i).display().to_string(),
                    });
                }
                match client.readyz().await {
                    Ok(()) => return Ok(()),
                    Err(e) => last_reason = e.to_string(),
                }
                tokio::time::sleep(std::time::Duration::from_millis(POLL_MS)).await;
            }
        };
        let result = tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), poll).await;
        match result {
            Ok(r) => r,
            Err(_) => Err(LocalnetError::NotReady {
                node: slot.spec.name.clone(),
                timeout_ms,
                reason: last_reason,
                log: self.log_path(i).display().to_string(),
            }),
        }
    }

    /// Waits for every node's `/readyz` (concurrently; one shared timeout).
    /// Returns the first failure (by node index).
    pub async fn wait_all_ready(&self, timeout_ms: u64) -> Result<(), (usize, LocalnetError)> {
        let waits = (0..self.slots.len())
            .map(|i| async move { self.wait_ready(i, timeout_ms).await.map_err(|e| (i, e)) });
        let results = join_all(waits).await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    }

    /// `GET /status` of node `i`.
    pub async fn status(&self, i: usize) -> Result<StatusView, LocalnetError> {
        self.slot(i)?;
        Ok(self.client(i).status().await?)
    }

    /// The last `lines` lines of node `i`'s log (reads at most the last
    /// 64 KiB). Empty if there is no log yet.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let Some(slot) = self.slots.get(i) else {
            return String::new();
        };
        read_tail(&slot.spec.home.join(LOG_FILE), lines)
    }

    /// Tells the operator on stderr that node `i` did not become ready, with
    /// the end of its log (where the reason usually is).
    pub fn print_not_ready(&self, i: usize, error: &dyn std::fmt::Display) {
        eprintln!(
            "{} is not ready: {error}\nlast {LOG_TAIL_LINES} lines of {}:\n{}",
            self.name(i),
            self.log_path(i).display(),
            self.log_tail(i, LOG_TAIL_LINES)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.slots.len() {
            self.kill(i);
        }
    }
}

/// Runs futures concurrently on the current task and collects their outputs
/// in order (a minimal `join_all`; the crate has no `futures` dependency).
pub(crate) async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (fut, out) in pending.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The last `lines` lines of the file at `path` (at most the last 64 KiB).
pub fn read_tail(path: &Path, lines: usize) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_MAX_BYTES);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if f.take(LOG_TAIL_MAX_BYTES).read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    let mut out = all[from..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A stand-in for the `bitcraps` binary: a shell script that ignores its
    /// arguments, logs a line, and behaves as `body` says.
    fn fake_bin(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho \"started $*\"\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn nodes(dir: &Path, n: usize) -> Vec<NodeSpec> {
        (0..n)
            .map(|i| {
                let home = dir.join(format!("val{i}"));
                std::fs::create_dir_all(&home).unwrap();
                NodeSpec {
                    name: format!("val{i}"),
                    home,
                    p2p_addr: "127.0.0.1:1".parse().unwrap(),
                    // Nothing listens on port 1: readiness polls fail fast.
                    http_addr: "127.0.0.1:1".parse().unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn start_stop_kill_restart_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        // Exits 0 on SIGTERM, like `bitcraps start`.
        let bin = fake_bin(
            dir.path(),
            "graceful",
            "trap 'echo stopping; exit 0' TERM\nwhile :; do sleep 0.05; done",
        );
        let mut c = Cluster::from_nodes(&bin, nodes(dir.path(), 3), &["--extra".into()]).unwrap();
        assert_eq!(c.node_count(), 3);
        assert!(!c.is_running(0));
        c.start_all().unwrap();
        assert!((0..3).all(|i| c.is_running(i)));
        assert!(matches!(
            c.start_node(1),
            Err(LocalnetError::AlreadyRunning(_))
        ));
        std::thread::sleep(std::time::Duration::from_millis(200));

        let status = c.stop(0).unwrap();
        assert!(status.success(), "{status:?}");
        assert!(!c.is_running(0));
        assert!(matches!(c.stop(0), Err(LocalnetError::NotRunning(_))));
        let log = c.log_tail(0, 20);
        assert!(
            log.contains(&format!(
                "started --home {} --log-format json start --extra",
                c.node(0).home.display()
            )),
            "{log}"
        );
        assert!(log.contains("stopping"), "{log}");

        c.kill(1);
        assert!(!c.is_running(1));
        assert!(!c.last_exit(1).unwrap().success());

        c.restart(1).unwrap();
        assert!(c.is_running(1));
        // Appended, not truncated: two starts in the log.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(c.log_tail(1, 100).matches("started").count(), 2);

        let statuses = c.stop_all();
        assert!(statuses[0].is_none());
        assert!(statuses[1].unwrap().success());
        assert!(statuses[2].unwrap().success());
        assert_eq!(c.http_url(2), "http://127.0.0.1:1");
        assert_eq!(c.log_path(2), dir.path().join("val2").join("node.log"));
    }

    #[test]
    fn extra_environment_reaches_every_node() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(dir.path(), "env", "echo \"conf=$BITCRAPS_TEST_CONF\"");
        let mut c = Cluster::from_nodes(&bin, nodes(dir.path(), 2), &[]).unwrap();
        c.set_env("BITCRAPS_TEST_CONF", "first");
        c.set_env("BITCRAPS_TEST_CONF", "/x/softhsm2.conf");
        c.start_all().unwrap();
        for i in 0..2 {
            for _ in 0..100 {
                if !c.is_running(i) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let log = c.log_tail(i, 10);
            assert!(log.contains("conf=/x/softhsm2.conf"), "{log}");
            assert!(!log.contains("first"), "{log}");
        }
    }

    #[test]
    fn stop_escalates_to_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(
            dir.path(),
            "stubborn",
            "trap '' TERM\nwhile :; do sleep 0.05; done",
        );
        let mut c = Cluster::from_nodes(&bin, nodes(dir.path(), 1), &[]).unwrap();
        c.set_stop_timeout_ms(300);
        c.start_node(0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let status = c.stop(0).unwrap();
        assert!(!status.success());
        assert!(!c.is_running(0));
    }

    #[test]
    fn drop_kills_children() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(dir.path(), "sleeper", "exec sleep 1000");
        let pid = {
            let mut c = Cluster::from_nodes(&bin, nodes(dir.path(), 1), &[]).unwrap();
            c.start_node(0).unwrap();
            c.pid(0).unwrap()
        };
        // Reaped by Drop: the pid no longer names our child (signal 0 probes).
        let alive = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap())
            .map(|p| rustix::process::test_kill_process(p).is_ok())
            .unwrap();
        assert!(!alive, "child {pid} survived Drop");
    }

    #[tokio::test]
    async fn wait_ready_reports_exit_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(dir.path(), "crasher", "echo boom >&2\nexit 3");
        let mut c = Cluster::from_nodes(&bin, nodes(dir.path(), 2), &[]).unwrap();
        c.start_node(0).unwrap();
        match c.wait_ready(0, 5_000).await {
            Err(LocalnetError::NodeExited { node, status, .. }) => {
                assert_eq!(node, "val0");
                assert!(status.contains('3'), "{status}");
            }
            other => panic!("{other:?}"),
        }
        assert!(c.log_tail(0, 20).contains("boom"));
        // Not started at all.
        assert!(matches!(
            c.wait_ready(1, 200).await,
            Err(LocalnetError::NodeExited { .. })
        ));
        assert!(matches!(
            c.wait_ready(7, 200).await,
            Err(LocalnetError::NoSuchNode(7))
        ));

        let bin = fake_bin(dir.path(), "silent", "exec sleep 1000");
        let mut c = Cluster::from_nodes(&bin, nodes(dir.path(), 1), &[]).unwrap();
        c.start_node(0).unwrap();
        match c.wait_ready(0, 300).await {
            Err(LocalnetError::NotReady { timeout_ms, .. }) => assert_eq!(timeout_ms, 300),
            other => panic!("{other:?}"),
        }
        match c.wait_all_ready(300).await {
            Err((0, LocalnetError::NotReady { .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tail_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        assert_eq!(read_tail(&p, 5), "");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        assert_eq!(read_tail(&p, 2), "line 98\nline 99\n");
        assert_eq!(read_tail(&p, 0), "");
        assert_eq!(read_tail(&p, 1000).lines().count(), 100);
    }
}
