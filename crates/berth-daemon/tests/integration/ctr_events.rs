//! `ctr events` while other calls change the metadata.

use std::time::Duration;

use berth_testkit::{require_ctr, Daemon, LineStream};

use crate::{ctr_create, daemon, rootfs};

const WAIT: Duration = Duration::from_secs(10);

/// Starts `ctr events` and makes sure its subscription is live: the stream
/// has no "ready" signal, so create containers until one shows up.
fn subscribed(daemon: &Daemon, rootfs: &std::path::Path) -> LineStream {
    let mut events = daemon
        .ctr_stream(None, &["events"])
        .expect("spawn ctr events");
    for attempt in 0..50 {
        let id = format!("probe-{attempt}");
        ctr_create(daemon, "default", rootfs, &id).assert_success();
        let seen = events.wait_for(
            |l| l.contains("/containers/create") && l.contains(&format!("\"{id}\"")),
            Duration::from_millis(200),
        );
        if seen.is_some() {
            return events;
        }
    }
    panic!("ctr events never showed a create:\n{}", events.report());
}

#[test]
fn ctr_events_shows_container_and_namespace_events() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    let mut events = subscribed(&daemon, &rootfs);

    ctr_create(&daemon, "default", &rootfs, "watched").assert_success();
    let line = events
        .wait_for(
            |l| l.contains("/containers/create") && l.contains(r#""id":"watched""#),
            WAIT,
        )
        .unwrap_or_else(|| panic!("no create event:\n{}", events.report()));
    // TIMESTAMP NAMESPACE TOPIC EVENT, as containerd prints it.
    let fields: Vec<&str> = line.split_whitespace().collect();
    let topic_at = fields
        .iter()
        .position(|f| *f == "/containers/create")
        .unwrap_or_else(|| panic!("topic field in {line:?}"));
    assert_eq!(fields[topic_at - 1], "default", "{line}");
    assert!(line.contains("io.containerd.runc.v2"), "{line}");

    daemon
        .ctr(&["containers", "label", "watched", "a=b"])
        .assert_success();
    events
        .wait_for(
            |l| l.contains("/containers/update") && l.contains("watched"),
            WAIT,
        )
        .unwrap_or_else(|| panic!("no update event:\n{}", events.report()));

    daemon
        .ctr(&["containers", "rm", "watched"])
        .assert_success();
    events
        .wait_for(
            |l| l.contains("/containers/delete") && l.contains("watched"),
            WAIT,
        )
        .unwrap_or_else(|| panic!("no delete event:\n{}", events.report()));

    daemon
        .ctr(&["namespaces", "create", "evns"])
        .assert_success();
    events
        .wait_for(
            |l| l.contains("/namespaces/create") && l.contains("evns"),
            WAIT,
        )
        .unwrap_or_else(|| panic!("no namespace event:\n{}", events.report()));
    assert!(events.is_running(), "{}", events.report());
}

#[test]
fn ctr_events_filters_by_topic() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    let mut all = subscribed(&daemon, &rootfs);
    let mut deletes = daemon
        .ctr_stream(None, &["events", r#"topic=="/containers/delete""#])
        .expect("spawn ctr events");
    // Wait until the filtered subscription is live too: delete probes until
    // one arrives.
    let mut live = false;
    for attempt in 0..50 {
        let id = format!("del-probe-{attempt}");
        ctr_create(&daemon, "default", &rootfs, &id).assert_success();
        daemon.ctr(&["containers", "rm", &id]).assert_success();
        if deletes
            .wait_for(|l| l.contains(&id), Duration::from_millis(200))
            .is_some()
        {
            live = true;
            break;
        }
    }
    assert!(live, "filtered stream saw nothing:\n{}", deletes.report());

    ctr_create(&daemon, "default", &rootfs, "filtered").assert_success();
    daemon
        .ctr(&["containers", "rm", "filtered"])
        .assert_success();
    deletes
        .wait_for(
            |l| l.contains("/containers/delete") && l.contains("filtered"),
            WAIT,
        )
        .unwrap_or_else(|| panic!("no delete event:\n{}", deletes.report()));
    all.wait_for(
        |l| l.contains("/containers/delete") && l.contains("filtered"),
        WAIT,
    )
    .unwrap_or_else(|| panic!("no delete event:\n{}", all.report()));
    deletes.drain();
    assert!(
        deletes
            .stdout()
            .iter()
            .all(|l| l.contains("/containers/delete")),
        "{}",
        deletes.report()
    );
}
