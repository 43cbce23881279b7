//! Running `bitcraps play` as a separate process, as a player would, for
//! tests that need a funded account, a table or a bet on a real chain.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bitcraps");
/// Longest any single `bitcraps play` invocation may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    pub fn json(&self) -> serde_json::Value {
        let line = self.stdout.lines().last().unwrap_or("");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs `bitcraps play --node URL [--key KEY] ARGS...`.
pub fn play(url: &str, key: Option<&Path>, args: &[&str]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.arg("play").arg("--node").arg(url);
    if let Some(k) = key {
        cmd.arg("--key").arg(k);
    }
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn bitcraps play");
    let deadline = Instant::now() + COMMAND_DEADLINE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bitcraps play {args:?} did not finish within {COMMAND_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("collect output");
    let out = Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    out
}

pub fn ok(url: &str, key: Option<&Path>, args: &[&str]) -> Out {
    let out = play(url, key, args);
    assert_eq!(out.code, 0, "bitcraps play {args:?}: {out:?}");
    out
}
