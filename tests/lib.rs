//! Helpers for the end-to-end tests: find the workspace's binaries and run
//! them as child processes that are killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command};

/// The path of a binary built in the same profile as the running test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with --workspace (bash scripts/test.sh does)",
        path.display()
    );
    path
}

/// A child process killed (SIGKILL) when dropped.
pub struct Running(pub Child);

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        Running(cmd.spawn().expect("spawning a binary"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
