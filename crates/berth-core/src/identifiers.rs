//! containerd's identifier rules (STUB: the real rules land with the identifiers work).

use crate::Result;

/// Validates an object identifier (namespace, container id, lease id, …).
pub fn validate(_id: &str) -> Result<()> {
    Ok(())
}
