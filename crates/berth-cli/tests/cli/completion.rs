//! `berth --version` and `berth completion bash|zsh|fish`: no daemon needed.

use std::process::{Command, Output, Stdio};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_flag_prints_version_and_revision() {
    let text = stdout(&berth(&["--version"]));
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{text:?}");
    assert_eq!(words[..2], ["berth", env!("CARGO_PKG_VERSION")], "{text:?}");
    let revision = words[2];
    assert!(
        revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()),
        "revision {revision:?} is neither a git hash nor unknown"
    );
}

/// Runs bash with `script` on its stdin.
fn bash_with_stdin(args: &[&str], script: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("bash")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(script.as_bytes()).expect("write script");
    drop(stdin);
    child.wait_with_output().expect("wait for bash")
}

#[test]
fn bash_completion_parses_and_knows_the_subcommands() {
    let script = stdout(&berth(&["completion", "bash"]));
    let check = bash_with_stdin(&["-n"], &script);
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Sourcing it registers the completion function for `berth`.
    let source = bash_with_stdin(&["-c", "source /dev/stdin && complete -p berth"], &script);
    let registered = String::from_utf8_lossy(&source.stdout);
    assert!(
        source.status.success() && registered.contains("berth"),
        "{registered}{}",
        String::from_utf8_lossy(&source.stderr)
    );
    for subcommand in ["containers", "images", "tasks", "run", "completion"] {
        assert!(script.contains(subcommand), "no {subcommand} in the script");
    }
}

#[test]
fn zsh_and_fish_completions_name_berth() {
    let zsh = stdout(&berth(&["completion", "zsh"]));
    assert!(
        zsh.starts_with("#compdef berth"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    assert!(zsh.contains("images"), "no images in the zsh script");
    let fish = stdout(&berth(&["completion", "fish"]));
    assert!(fish.contains("complete -c berth"), "not a fish script");
    assert!(fish.contains("tasks"), "no tasks in the fish script");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = berth(&["completion", "csh"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("csh") && stderr.contains("bash"),
        "{stderr}"
    );
}
