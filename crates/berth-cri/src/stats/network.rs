//! A pod's network figures: its namespace's `/proc/<pid>/net/dev`.

use super::uint;
use k8s_cri::v1::{NetworkInterfaceUsage, NetworkUsage};

/// The interface CNI gives a pod, as containerd names it.
const DEFAULT_INTERFACE: &str = "eth0";

/// The interfaces in the network namespace of process `pid` (loopback
/// left out); none when the process is gone.
pub(crate) fn usage(pid: u32, timestamp: i64) -> Option<NetworkUsage> {
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let interfaces: Vec<_> = parse(&text)
        .into_iter()
        .filter(|i| i.name != "lo")
        .collect();
    Some(NetworkUsage {
        timestamp,
        default_interface: interfaces
            .iter()
            .find(|i| i.name == DEFAULT_INTERFACE)
            .cloned(),
        interfaces,
    })
}

/// `/proc/net/dev`: two header lines, then `name: rx_bytes packets errs
/// drop fifo frame compressed multicast tx_bytes packets errs …`.
fn parse(text: &str) -> Vec<NetworkInterfaceUsage> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, figures) = line.split_once(':')?;
            let f: Vec<u64> = figures
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            if f.len() < 11 {
                return None;
            }
            Some(NetworkInterfaceUsage {
                name: name.trim().to_string(),
                rx_bytes: uint(f[0]),
                rx_errors: uint(f[2]),
                tx_bytes: uint(f[8]),
                tx_errors: uint(f[10]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_columns() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
eth0:    4242      10    3    0    0     0          0         0     2121       5    1    0    0     0       0          0\n";
        let interfaces = parse(text);
        assert_eq!(interfaces.len(), 2);
        let eth0 = &interfaces[1];
        assert_eq!(eth0.name, "eth0");
        assert_eq!(eth0.rx_bytes, uint(4242));
        assert_eq!(eth0.rx_errors, uint(3));
        assert_eq!(eth0.tx_bytes, uint(2121));
        assert_eq!(eth0.tx_errors, uint(1));
    }
}
