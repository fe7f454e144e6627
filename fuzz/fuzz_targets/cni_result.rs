//! CNI results (`berth_cni::result`): what a plugin prints on ADD, any
//! spec 0.3.x/0.4.0/1.x. Any bytes parse to a result or an error; a parsed
//! result yields the container's addresses and files, and survives the
//! trip through the result cache (written as JSON, parsed back after a
//! restart) unchanged. A plugin's error output parses too.
#![no_main]

use berth_cni::files;
use berth_cni::result::PluginError;
use berth_cni::CniResult;
use libfuzzer_sys::fuzz_target;

const HOST_RESOLV: &str = "nameserver 127.0.0.53\nsearch example.test\n";

fuzz_target!(|data: &[u8]| {
    if let Some(err) = PluginError::parse(data) {
        let _ = err.kind();
        let _ = err.to_string();
    }
    let Ok(result) = CniResult::parse(data) else {
        return;
    };
    let ips = result.container_ips();
    for ip in result.ips() {
        assert!(
            berth_cni::result::parse_cidr(&ip.address).is_some(),
            "accepted address {:?} is not a CIDR",
            ip.address
        );
    }
    let _ = files::hosts("pod", &ips);
    let _ = files::resolv_conf(&[], result.dns(), HOST_RESOLV);
    let cached = serde_json::to_vec(result.raw()).expect("a parsed result serializes");
    let again = CniResult::parse(&cached)
        .unwrap_or_else(|e| panic!("cached result {cached:?} fails to parse: {e}"));
    assert_eq!(again, result, "the cached result differs");
});
