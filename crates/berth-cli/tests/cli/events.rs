//! `berth events`.

use std::time::Duration;

use crate::{create, daemon};

#[test]
fn events_stream_shows_creates_and_deletes() {
    let daemon = daemon();
    let mut events = daemon
        .berth_stream(None, &["events"])
        .expect("spawn berth events");
    // No readiness signal: create probes until one is seen.
    let mut live = false;
    for i in 0..50 {
        let id = format!("probe-{i}");
        create(&daemon, "default", &id, &[]);
        if events
            .wait_for(
                |l| l.contains(&format!("\"{id}\"")),
                Duration::from_millis(200),
            )
            .is_some()
        {
            live = true;
            break;
        }
    }
    assert!(live, "no event arrived:\n{}", events.report());

    create(&daemon, "other", "seen", &[]);
    let line = events
        .wait_for(|l| l.contains(r#""id":"seen""#), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no create event:\n{}", events.report()));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields
        .iter()
        .position(|f| *f == "/containers/create")
        .unwrap_or_else(|| panic!("topic in {line:?}"));
    assert_eq!(fields[at - 1], "other", "{line}");

    daemon
        .berth_ns("other", &["c", "rm", "seen"])
        .assert_success();
    events
        .wait_for(
            |l| l.contains("/containers/delete") && l.contains("seen"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no delete event:\n{}", events.report()));
}

#[test]
fn events_filter_by_namespace() {
    let daemon = daemon();
    let mut events = daemon
        .berth_stream(None, &["events", "namespace==only"])
        .expect("spawn berth events");
    let mut live = false;
    for i in 0..50 {
        create(&daemon, "elsewhere", &format!("noise-{i}"), &[]);
        let id = format!("probe-{i}");
        create(&daemon, "only", &id, &[]);
        if events
            .wait_for(
                |l| l.contains(&format!("\"{id}\"")),
                Duration::from_millis(200),
            )
            .is_some()
        {
            live = true;
            break;
        }
    }
    assert!(live, "no event arrived:\n{}", events.report());
    events.drain();
    assert!(
        events.stdout().iter().all(|l| !l.contains("noise-")),
        "{}",
        events.report()
    );
}
