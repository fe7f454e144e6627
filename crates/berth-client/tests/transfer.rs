//! [`berth_client::transfer`] against a private berthd: an archive
//! imported and exported through the daemon's transfer service (bytes in
//! and out over streams), and a push and pull through a loopback
//! registry with progress reported to the caller.

use std::sync::{Arc, Mutex};

use berth_client::berth_core::images::ImageStore;
use berth_client::transfer::{
    ExportOptions, ImportOptions, Progress, ProgressFn, PullOptions, RegistryOptions,
};
use berth_client::{Client, ErrorKind};
use berth_testkit::{busybox_oci_archive, require_registry, ArchiveNames, Daemon, Registry};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A progress callback and what it collected.
fn collector() -> (ProgressFn, Arc<Mutex<Vec<Progress>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let report: ProgressFn = Arc::new(move |p| sink.lock().expect("lock").push(p));
    (report, events)
}

fn events_named(events: &Mutex<Vec<Progress>>, event: &str) -> Vec<Progress> {
    let events = events.lock().expect("lock");
    events
        .iter()
        .filter(|p| p.event == event)
        .cloned()
        .collect()
}

#[test]
fn import_and_export_archives_through_the_daemon() {
    let daemon = Daemon::start().expect("start berthd");
    let name = "docker.io/library/busybox:client-transfer";
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("client-transfer".into()),
        image_name: Some(name.into()),
    })
    .expect("archive");
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(daemon.address().display().to_string())
            .await
            .expect("connect")
            .with_namespace("xfer");
        let (report, events) = collector();
        client
            .transfer()
            .import(
                archive.bytes.as_slice(),
                &ImportOptions::default(),
                Some(report),
            )
            .await
            .expect("import");
        let saved = events_named(&events, "saved");
        assert_eq!(saved.len(), 1, "{:?}", events.lock().expect("lock"));
        assert_eq!(saved[0].name, name);
        let image = client.images().get(name).await.expect("the image");
        assert_eq!(image.target.digest, archive.manifest);

        // Export it and import the export elsewhere: the same image.
        let mut exported = Vec::new();
        client
            .transfer()
            .export(
                &[name.to_string()],
                &mut exported,
                &ExportOptions::default(),
                None,
            )
            .await
            .expect("export");
        assert!(exported.len() > 500_000, "busybox is in the export");
        let other = client.with_namespace("xfer-again");
        other
            .transfer()
            .import(exported.as_slice(), &ImportOptions::default(), None)
            .await
            .expect("import the export");
        let again = other.images().get(name).await.expect("the image");
        assert_eq!(again.target.digest, archive.manifest);

        // Failures come back as typed errors, and end the streams.
        let err = client
            .transfer()
            .export(
                &["no/such:image".to_string()],
                Vec::new(),
                &ExportOptions::default(),
                None,
            )
            .await
            .expect_err("no such image");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let err = client
            .transfer()
            .import(&b"not a tar"[..], &ImportOptions::default(), None)
            .await
            .expect_err("not an archive");
        assert_ne!(err.kind(), ErrorKind::NotFound, "{err}");
    });
}

#[test]
fn push_and_pull_report_progress() {
    require_registry!();
    let registry = Registry::start().expect("start docker-registry");
    let daemon = Daemon::start().expect("start berthd");
    let name = format!("{}/client/busybox:latest", registry.host());
    let short = format!("{}/client/busybox", registry.host());
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("latest".into()),
        image_name: Some(name.clone()),
    })
    .expect("archive");
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(daemon.address().display().to_string())
            .await
            .expect("connect");
        let src = client.with_namespace("src");
        src.transfer()
            .import(archive.bytes.as_slice(), &ImportOptions::default(), None)
            .await
            .expect("import");
        let registry_options = RegistryOptions {
            plain_http: true,
            ..RegistryOptions::default()
        };
        let (report, events) = collector();
        src.transfer()
            .push(&name, &name, &registry_options, &[], Some(report))
            .await
            .expect("push");
        assert_eq!(events_named(&events, "pushed").len(), 1);

        let dst = client.with_namespace("dst");
        let (report, events) = collector();
        let options = PullOptions {
            unpack: None,
            ..PullOptions::default()
        };
        dst.transfer()
            .pull(&short, &registry_options, &options, Some(report))
            .await
            .expect("pull");
        assert_eq!(events_named(&events, "resolved").len(), 1);
        let saved = events_named(&events, "saved");
        assert_eq!(saved.len(), 1);
        let desc = saved[0].desc.as_ref().expect("the root descriptor");
        assert_eq!(desc.digest, archive.manifest);
        let image = ImageStore::get(&dst.images(), &name).await.expect("image");
        assert_eq!(image.target.digest, archive.manifest);
        // The short reference names the one image, normalized.
        let all = ImageStore::list(&dst.images(), &[]).await.expect("list");
        let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, [name.as_str()]);
    });
}
