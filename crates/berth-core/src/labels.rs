//! containerd's label rules (STUB: the real rules land with the labels work).

use crate::Result;
use std::collections::HashMap;

/// Validates one label key and value.
pub fn validate(_key: &str, _value: &str) -> Result<()> {
    Ok(())
}

/// Validates every label of a map.
pub fn validate_all(labels: &HashMap<String, String>) -> Result<()> {
    labels.iter().try_for_each(|(k, v)| validate(k, v))
}
