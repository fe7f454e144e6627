//! containerd's filter syntax (`berth_core::filters`): parsing must never
//! panic, and a parsed filter must evaluate against any object.
#![no_main]

use berth_core::filters::Filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One filter string, then the same text as a List request's ORed list.
    if let Ok(filter) = Filter::parse(text) {
        let object = |path: &[String]| -> Option<String> {
            match path.first().map(String::as_str) {
                Some("name") => Some("docker.io/library/busybox:latest".into()),
                Some("labels") => path.get(1).map(|k| format!("value-of-{k}")),
                _ => None,
            }
        };
        let _ = filter.matches(&object);
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let _ = Filter::parse_all(&lines);
});
