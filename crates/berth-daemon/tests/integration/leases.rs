//! Leases as `ctr` uses them: every `ctr containers create` runs inside a
//! lease with a random id, created first and deleted afterwards.

use berth_testkit::pb::services::v1::leases_client::LeasesClient;
use berth_testkit::pb::services::v1::{CreateRequest, DeleteRequest, ListRequest};
use berth_testkit::{block_on, connect, require_ctr, with_namespace};

use crate::{ctr_create, ctr_ids, daemon, rootfs};

/// ctr's lease ids are `<nanoseconds>-<base64url of 3 random bytes>`, so they
/// may hold `_` and end in `-`. containerd only requires them to be non-empty;
/// they are not identifiers.
const CTR_STYLE_IDS: &[&str] = &["643506148-S07-", "590185937-xmm-", "12-a_b_", "7--_-"];

#[test]
fn lease_ids_like_ctrs_are_accepted() {
    let daemon = daemon();
    let address = daemon.address().to_owned();
    block_on(async move {
        let mut leases = LeasesClient::new(connect(&address).await.expect("connect"));
        for id in CTR_STYLE_IDS {
            let req = CreateRequest {
                id: (*id).to_owned(),
                ..Default::default()
            };
            let created = leases
                .create(with_namespace(req, "default").expect("ns"))
                .await
                .unwrap_or_else(|s| panic!("create lease {id:?}: {s:?}"));
            let lease = created.into_inner().lease.expect("lease in reply");
            assert_eq!(lease.id, *id);
        }
        let listed = leases
            .list(with_namespace(ListRequest::default(), "default").expect("ns"))
            .await
            .expect("list leases")
            .into_inner()
            .leases;
        let mut ids: Vec<&str> = listed.iter().map(|l| l.id.as_str()).collect();
        ids.sort();
        let mut want = CTR_STYLE_IDS.to_vec();
        want.sort();
        assert_eq!(ids, want);
        for id in CTR_STYLE_IDS {
            let req = DeleteRequest {
                id: (*id).to_owned(),
                sync: false,
            };
            leases
                .delete(with_namespace(req, "default").expect("ns"))
                .await
                .unwrap_or_else(|s| panic!("delete lease {id:?}: {s:?}"));
        }
    })
    .expect("runtime");
}

#[test]
fn repeated_ctr_creates_all_succeed_and_release_their_leases() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    // Each ctr call draws a fresh random lease id: many calls cover the
    // awkward ones (an id ending in '-' comes up about once in eight).
    let ids: Vec<String> = (0..40).map(|i| format!("rep-{i:02}")).collect();
    for id in &ids {
        ctr_create(&daemon, "default", &rootfs, id).assert_success();
    }
    assert_eq!(ctr_ids(&daemon, "default"), ids);
    let leases = daemon.ctr(&["leases", "ls", "-q"]).assert_success();
    assert!(
        leases.lines().is_empty(),
        "ctr's leases were not deleted:\n{leases}"
    );
}
