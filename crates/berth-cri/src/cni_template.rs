//! UpdateRuntimeConfig's CNI config template: containerd fills
//! `[…cni] conf_template` (a Go `text/template`) with the node's pod CIDRs
//! and writes the result as `<conf_dir>/10-containerd-net.conflist`.
//!
//! The template data are `.PodCIDR` (the first CIDR), `.PodCIDRRanges`
//! (all of them) and `.Routes` (`0.0.0.0/0` and/or `::/0`, by the CIDRs'
//! families). berth understands the part of the template language such
//! files use: `{{.Field}}`, `{{range $i, $x := .List}}…{{end}}`,
//! `{{$x}}` and `{{if $i}}…{{end}}`. Anything else is an error naming it.

use berth_core::{Error, Result};
use std::collections::HashMap;

/// The file containerd writes.
pub const CONF_FILE: &str = "10-containerd-net.conflist";

/// What a template can refer to.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateData {
    /// `.PodCIDR`.
    pub pod_cidr: String,
    /// `.PodCIDRRanges`.
    pub pod_cidr_ranges: Vec<String>,
    /// `.Routes`.
    pub routes: Vec<String>,
}

impl TemplateData {
    /// The data for the kubelet's comma-separated `pod_cidr`.
    pub fn from_pod_cidrs(pod_cidrs: &str) -> Result<Self> {
        let ranges: Vec<String> = pod_cidrs
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        let (mut v4, mut v6) = (false, false);
        for cidr in &ranges {
            let (ip, prefix) = cidr
                .split_once('/')
                .ok_or_else(|| Error::invalid_argument(format!("invalid pod CIDR {cidr:?}")))?;
            let ip: std::net::IpAddr = ip
                .parse()
                .map_err(|_| Error::invalid_argument(format!("invalid pod CIDR {cidr:?}")))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if !prefix.parse::<u8>().is_ok_and(|p| p <= max) {
                return Err(Error::invalid_argument(format!(
                    "invalid pod CIDR {cidr:?}"
                )));
            }
            v4 |= ip.is_ipv4();
            v6 |= ip.is_ipv6();
        }
        let mut routes = Vec::new();
        if v4 {
            routes.push("0.0.0.0/0".to_string());
        }
        if v6 {
            routes.push("::/0".to_string());
        }
        Ok(TemplateData {
            pod_cidr: ranges.first().cloned().unwrap_or_default(),
            pod_cidr_ranges: ranges,
            routes,
        })
    }

    fn list(&self, name: &str) -> Option<&[String]> {
        match name {
            ".PodCIDRRanges" => Some(&self.pod_cidr_ranges),
            ".Routes" => Some(&self.routes),
            _ => None,
        }
    }
}

/// A parsed template.
#[derive(Debug, PartialEq)]
enum Node {
    Text(String),
    /// `{{.PodCIDR}}` or `{{$x}}`.
    Value(String),
    /// `{{range $i, $x := .List}}body{{end}}`.
    Range {
        index: String,
        item: String,
        list: String,
        body: Vec<Node>,
    },
    /// `{{if $i}}body{{end}}`.
    If {
        var: String,
        body: Vec<Node>,
    },
}

/// Fills `template` with `data`.
pub fn render(template: &str, data: &TemplateData) -> Result<String> {
    let mut rest = template;
    let nodes = parse(&mut rest, false)?;
    let mut out = String::new();
    let mut vars = HashMap::new();
    vars.insert(".PodCIDR".to_string(), data.pod_cidr.clone());
    emit(&nodes, data, &mut vars, &mut out)?;
    Ok(out)
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::invalid_argument(format!("cni config template: {what}"))
}

/// Parses up to the end of input, or to the `{{end}}` closing a block.
fn parse(rest: &mut &str, in_block: bool) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    loop {
        let Some(start) = rest.find("{{") else {
            if in_block {
                return Err(bad("missing {{end}}"));
            }
            if !rest.is_empty() {
                nodes.push(Node::Text(rest.to_string()));
            }
            *rest = "";
            return Ok(nodes);
        };
        if start > 0 {
            nodes.push(Node::Text(rest[..start].to_string()));
        }
        let end = rest[start..].find("}}").ok_or_else(|| bad("unclosed {{"))? + start;
        let action = rest[start + 2..end].trim().to_string();
        *rest = &rest[end + 2..];
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            ["end"] if in_block => return Ok(nodes),
            ["range", index, item, ":=", list] => {
                let index = index.strip_suffix(',').ok_or_else(|| bad(&action))?;
                let body = parse(rest, true)?;
                nodes.push(Node::Range {
                    index: index.to_string(),
                    item: item.to_string(),
                    list: list.to_string(),
                    body,
                });
            }
            ["if", var] => {
                let body = parse(rest, true)?;
                nodes.push(Node::If {
                    var: var.to_string(),
                    body,
                });
            }
            [value] if value.starts_with('.') || value.starts_with('$') => {
                nodes.push(Node::Value(value.to_string()))
            }
            _ => return Err(bad(format!("unsupported action {{{{{action}}}}}"))),
        }
    }
}

fn emit(
    nodes: &[Node],
    data: &TemplateData,
    vars: &mut HashMap<String, String>,
    out: &mut String,
) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Value(name) => out.push_str(
                vars.get(name)
                    .ok_or_else(|| bad(format!("unknown value {name}")))?,
            ),
            Node::Range {
                index,
                item,
                list,
                body,
            } => {
                let items = data
                    .list(list)
                    .ok_or_else(|| bad(format!("unknown list {list}")))?;
                for (i, value) in items.iter().enumerate() {
                    vars.insert(index.clone(), i.to_string());
                    vars.insert(item.clone(), value.clone());
                    emit(body, data, vars, out)?;
                }
                vars.remove(index);
                vars.remove(item);
            }
            Node::If { var, body } => {
                let value = vars
                    .get(var)
                    .ok_or_else(|| bad(format!("unknown value {var}")))?;
                // Go's truth: a zero number or an empty string is false.
                if !(value.is_empty() || value == "0") {
                    emit(body, data, vars, out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template containerd's CRI documentation shows.
    const DOC_TEMPLATE: &str = r#"{"ipam": {"type": "host-local", "subnet": "{{.PodCIDR}}",
"ranges": [{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$range}}"}]{{end}}],
"routes": [{{range $i, $route := .Routes}}{{if $i}}, {{end}}{"dst": "{{$route}}"}{{end}}]}}"#;

    #[test]
    fn the_documented_template_fills_in_dual_stack() {
        let data = TemplateData::from_pod_cidrs("10.1.0.0/24, fd00:1::/64").expect("cidrs");
        let text = render(DOC_TEMPLATE, &data).expect("render");
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(json["ipam"]["subnet"], "10.1.0.0/24");
        assert_eq!(json["ipam"]["ranges"][1][0]["subnet"], "fd00:1::/64");
        assert_eq!(json["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(json["ipam"]["routes"][1]["dst"], "::/0");
    }

    #[test]
    fn single_stack_has_one_route() {
        let data = TemplateData::from_pod_cidrs("10.2.0.0/16").expect("cidrs");
        assert_eq!(data.routes, ["0.0.0.0/0"]);
        let text = render(DOC_TEMPLATE, &data).expect("render");
        assert!(
            text.contains(r#""ranges": [[{"subnet": "10.2.0.0/16"}]]"#),
            "{text}"
        );
    }

    #[test]
    fn bad_cidrs_and_unknown_actions_are_errors() {
        assert!(TemplateData::from_pod_cidrs("10.0.0.0").is_err());
        assert!(TemplateData::from_pod_cidrs("10.0.0.0/33").is_err());
        let data = TemplateData::from_pod_cidrs("10.0.0.0/8").expect("cidrs");
        let err = render("{{printf \"x\"}}", &data).expect_err("unsupported");
        assert!(err.to_string().contains("unsupported action"), "{err}");
        assert!(render("{{range $i, $r := .Routes}}x", &data).is_err());
        assert!(render("{{.Nope}}", &data).is_err());
    }
}
