//! `cryptolake run` as a child process: JSON logs captured to a file, read
//! back to wait for events; signals sent for real.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running agent, killed on drop.
pub struct RunningAgent {
    child: Child,
    log: PathBuf,
}

impl RunningAgent {
    /// Starts `cryptolake run --config config`, logging JSON to a file next
    /// to the config.
    pub fn start(config: &Path) -> Self {
        Self::start_env(config, &[])
    }

    /// [`RunningAgent::start`] with extra environment variables.
    pub fn start_env(config: &Path, env: &[(&str, &str)]) -> Self {
        let dir = config.parent().expect("config has a directory");
        let log = dir.join(format!("agent-{}.log", fastrand_suffix()));
        let file = std::fs::File::create(&log).expect("create log file");
        let child = super::cryptolake()
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn cryptolake run");
        Self { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log event so far.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Events whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["message"] == message)
            .collect()
    }

    /// Waits until `count` events satisfy `predicate`; panics with the log
    /// after `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        count: usize,
        timeout: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<Value> = self.events().into_iter().filter(&predicate).collect();
            if found.len() >= count {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the agent exited ({status}) before {what}:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `count` events with `message`.
    pub fn wait_for_message(
        &mut self,
        message: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        self.wait_for(message, count, timeout, |e| e["message"] == message)
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "the agent did not exit within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole log, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fastrand_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Replaces `path` with `bytes` the way an operator deploys a plugin: write a
/// temporary file next to it, then rename it over the old one.
pub fn replace_file(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("wasm.tmp");
    std::fs::write(&temp, bytes).expect("write temp file");
    std::fs::rename(&temp, path).expect("rename over the old file");
}

/// The same component with a custom section appended: valid, same code and
/// version, different SHA-256 (a new build of the same plugin).
pub fn rebuilt(wasm: &[u8], tag: &str) -> Vec<u8> {
    let name = b"cryptolake-test-build";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

/// The manifest entries of `pipeline` in a local lake.
pub fn manifest_entries(lake: &Path, pipeline: &str) -> Vec<Value> {
    let dir = lake.join("_cryptolake/manifest").join(pipeline);
    let mut entries = Vec::new();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("read manifest entry");
                entries.push(serde_json::from_str(&text).expect("manifest entry is JSON"));
            }
        }
    }
    entries
}
