//! Packing messages into `google.protobuf.Any` the way containerd's `typeurl` does.
//!
//! containerd's protobuf messages are registered under their full proto name
//! (`containerd.events.ContainerCreate`), and that name is the `type_url`.

use prost::{Message, Name};
use prost_types::Any;

/// Packs a message into an `Any` whose type URL is the message's full proto name.
pub fn pack<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::full_name(),
        value: message.encode_to_vec(),
    }
}

/// Unpacks an `Any` if it holds an `M` (by full name, with or without a
/// `types.googleapis.com/` prefix).
pub fn unpack<M: Message + Name + Default>(any: &Any) -> Option<M> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    if name != M::full_name() {
        return None;
    }
    M::decode(any.value.as_slice()).ok()
}
