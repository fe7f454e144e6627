//! Container networking with CNI, as libcni (containernetworking/cni) does it.
//!
//! A CNI *network* is a JSON configuration list (`.conflist`; a single
//! `.conf` is wrapped as a list of one) naming a chain of *plugins*:
//! executables found in the plugin directories (`/usr/lib/cni`, …). To
//! attach a container, berth runs each plugin of the chain with
//! `CNI_COMMAND=ADD` and the `CNI_*` environment describing the container
//! (its id, network namespace path and interface name), the plugin's
//! configuration on stdin and, from the second plugin on, the result of the
//! one before as `prevResult`. DEL runs the chain in reverse, CHECK runs it
//! with the result ADD returned, which is kept in a cache on disk
//! (`<cache>/results/<network>-<container>-<ifname>`, libcni's format) so
//! that DEL and CHECK work after a restart. VERSION, and STATUS/GC for
//! spec 1.1 lists, complete the protocol.
//!
//! On top of the protocol ([`Cni`]'s `add_list`, `del_list`, …) this crate
//! owns the life of a container's network ([`Cni::attach`] and
//! [`Cni::detach`]): a network namespace created by berth and bind-mounted
//! under a directory of the daemon's state, loopback plus the chosen network
//! (or the first N of the configuration directory, as `eth0`, `eth1`, …)
//! attached inside it, everything rolled back if a step fails, and the
//! files a container wants from it (`/etc/hosts`, `/etc/resolv.conf`).

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod engine;
pub mod exec;
pub mod files;
pub mod netns;
pub mod result;
mod version;

pub use config::{NetworkConfigList, PluginConf};
pub use engine::{
    if_name, AttachRequest, Attached, Attachment, Cni, CniOptions, PortMapping, RuntimeConf,
};
pub use result::CniResult;
