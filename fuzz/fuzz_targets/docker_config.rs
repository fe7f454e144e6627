//! Docker's `config.json` (`berth_image::registry::dockerconfig`): any bytes
//! must parse to a config or an error, and credential lookup never panic.
#![no_main]

use berth_image::registry::dockerconfig::DockerConfig;
use libfuzzer_sys::fuzz_target;

const HOSTS: &[&str] = &[
    "docker.io",
    "registry-1.docker.io",
    "index.docker.io",
    "localhost:5000",
    "ghcr.io",
    "",
];

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = DockerConfig::parse(data) {
        for host in HOSTS {
            let _ = config.credentials(host);
        }
    }
});
