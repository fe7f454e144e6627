//! A registry's `hosts.toml` (`berth_image::registry::hosts`): any text
//! must parse to hosts or an error, never a panic.
#![no_main]

use berth_image::registry::hosts::parse_hosts_file;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(hosts) = parse_hosts_file(Path::new("/etc/berth/certs.d/registry.example"), text) {
        for host in &hosts {
            let _ = host.url("https", "v2/");
        }
    }
});
