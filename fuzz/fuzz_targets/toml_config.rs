//! berthd's TOML config (`berth_daemon::config`): any text must decode to a
//! config or an error, never a panic.
#![no_main]

use berth_daemon::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(loaded) = Config::parse(text, Path::new("/etc/berth/config.toml")) {
        let _ = loaded.config.ttrpc_address();
    }
});
