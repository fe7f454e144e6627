//! Image references (`berth_image::reference`): parsing must never panic,
//! and a parsed reference must print as a string that parses back to it.
#![no_main]

use berth_image::reference::{self, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = Reference::parse_normalized(text) {
        let printed = parsed.to_string();
        let again = Reference::parse_normalized(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(parsed, again, "{text:?} -> {printed:?} does not round-trip");
        let _ = parsed.familiar_string();
        let _ = parsed.clone().tag_name_only();
    }
    let _ = reference::normalize(text);
    let _ = reference::familiarize(text);
    let _ = reference::oci_ref_name(text);
});
