//! SIGTERM during slow handlers: runs the `graceful` example as a real process, sends it
//! SIGTERM while jobs are in flight, and checks that every started job finished, nothing
//! new started after the signal, and the service stopped cleanly.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long to wait for each expected line before failing.
const WAIT: Duration = Duration::from_secs(20);

/// `target/<profile>/examples/graceful`, built by `cargo test` next to this test's
/// `target/<profile>/deps/` directory.
fn example_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("graceful{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "the `graceful` example is not built at {}: run `cargo test --workspace` (or \
         `cargo test -p ruststream-examples`), which builds the examples before the tests",
        binary.display()
    );
    binary
}

/// Kills the child if the test fails before it exits.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_lets_in_flight_handlers_finish_and_stops_cleanly() {
    let mut service = Service(
        Command::new(example_binary())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts"),
    );
    let stdout = service.0.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let next_line = |output: &mut Vec<String>| -> Option<String> {
        match received.recv_timeout(WAIT) {
            Ok(line) => {
                output.push(line.clone());
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no output for {WAIT:?}; so far: {output:#?}")
            }
        }
    };

    // Wait until the three workers are busy, then send SIGTERM.
    let mut started = 0;
    while started < 3 {
        let line = next_line(&mut output).unwrap_or_else(|| panic!("exited early: {output:#?}"));
        if line.ends_with(" started") {
            started += 1;
        }
    }
    let status = Command::new("/bin/kill")
        .args(["-TERM", &service.0.id().to_string()])
        .status()
        .expect("/bin/kill runs");
    assert!(status.success(), "kill -TERM failed");
    let signalled_at = output.len();

    while next_line(&mut output).is_some() {}
    let exit = service.0.wait().expect("the service exits");
    let text = output.join("\n");
    assert!(exit.success(), "exit status {exit}:\n{text}");

    let ids_with = |suffix: &str| -> Vec<String> {
        output
            .iter()
            .filter_map(|line| line.strip_suffix(suffix))
            .map(str::to_owned)
            .collect()
    };
    let started = ids_with(" started");
    let finished = ids_with(" finished");
    assert!(!started.is_empty(), "{text}");
    for job in &started {
        assert!(
            finished.contains(job),
            "{job} started but did not finish:\n{text}"
        );
    }
    assert!(
        text.contains("shutting down: waiting for the jobs in flight"),
        "{text}"
    );
    assert_eq!(
        output.last().map(String::as_str),
        Some("stopped cleanly"),
        "{text}"
    );
    let shutting_down = output
        .iter()
        .position(|line| line.starts_with("shutting down"))
        .unwrap();
    assert!(shutting_down >= signalled_at, "{text}");
    assert!(
        output[shutting_down..]
            .iter()
            .all(|line| !line.ends_with(" started")),
        "no job starts once the shutdown has begun:\n{text}"
    );
    assert!(
        finished.len() < 20,
        "the signal came while jobs were still waiting:\n{text}"
    );
}
