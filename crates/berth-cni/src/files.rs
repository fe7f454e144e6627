//! The files a networked container wants: `/etc/hosts`, `/etc/resolv.conf`
//! and `/etc/hostname`, written from the CNI result.

use std::net::IpAddr;

use crate::result::Dns;

/// `/etc/hosts`: localhost and the container's own addresses under its
/// hostname.
pub fn hosts(hostname: &str, ips: &[IpAddr]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for ip in ips {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

/// `/etc/resolv.conf`: the servers asked for (`--dns`), else the result's,
/// else the host's that are not loopback addresses (they would mean the
/// container itself); search domains and options from the result or, when
/// the host's servers are used, the host.
pub fn resolv_conf(requested: &[String], result: &Dns, host: &str) -> String {
    let mut servers: Vec<String> = requested.to_vec();
    let mut search: Vec<String> = result.search.clone();
    let mut options: Vec<String> = result.options.clone();
    if servers.is_empty() {
        servers = result.nameservers.clone();
    }
    if servers.is_empty() {
        for line in host.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next() {
                        if ip.parse::<IpAddr>().is_ok_and(|ip| !ip.is_loopback()) {
                            servers.push(ip.to_string());
                        }
                    }
                }
                Some("search") if search.is_empty() => search = words.map(String::from).collect(),
                Some("options") if options.is_empty() => {
                    options = words.map(String::from).collect()
                }
                _ => {}
            }
        }
    }
    let mut out = String::new();
    if !result.domain.is_empty() {
        out.push_str(&format!("domain {}\n", result.domain));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for server in &servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_the_container() {
        let ip: IpAddr = "10.88.0.5".parse().expect("ip");
        let text = hosts("web", &[ip]);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.ends_with("10.88.0.5\tweb\n"));
    }

    #[test]
    fn resolv_conf_prefers_requested_then_result_then_host() {
        let host =
            "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\noptions edns0\n";
        let none = Dns::default();
        assert_eq!(
            resolv_conf(&["198.51.100.1".into()], &none, host),
            "nameserver 198.51.100.1\n"
        );
        let result = Dns {
            nameservers: vec!["10.0.0.1".into()],
            search: vec!["svc".into()],
            ..Dns::default()
        };
        assert_eq!(
            resolv_conf(&[], &result, host),
            "search svc\nnameserver 10.0.0.1\n"
        );
        assert_eq!(
            resolv_conf(&[], &none, host),
            "search example.org\nnameserver 192.0.2.1\noptions edns0\n"
        );
    }
}
