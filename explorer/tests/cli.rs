//! `mandel-explore`'s refusals: bad flags exit with code 2 and a line that
//! names the flag, before anything listens or is written.

use std::process::Command;

fn explore(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mandel-explore"))
        .args(args)
        .output()
        .expect("running mandel-explore");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--port", "70000"], "--port"),
        (&["--workers", "0"], "--workers"),
        (&["--colormap", "rainbow"], "twilight_shifted"),
        (&["--tile-timeout", "5"], "--bucket"),
        (&["--bucket", "b", "--tile-timeout", "0"], "--tile-timeout"),
        (
            &["--pyramid", "/no/such/folder", "--cache", cache],
            "--pyramid",
        ),
    ];
    for (args, needle) in cases {
        let (code, stderr) = explore(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // Nothing was written: the cache folder was never made.
    assert!(!dir.path().join("cache").exists());
}
