//! Image references as Docker spells them (`busybox`, `foo/bar:1`,
//! `localhost:5000/x@sha256:…`) and the full names containerd stores
//! (`docker.io/library/busybox:latest`).
//!
//! [`normalize`] is distribution's `ParseDockerRef` (Docker archive tags
//! become image names on import), [`familiarize`] is `ParseNormalizedNamed`,
//! then `TagNameOnly` and `FamiliarString` (image names become `RepoTags`
//! on export), and [`oci_ref_name`] is the tag-or-digest part containerd
//! writes into `org.opencontainers.image.ref.name`.

use std::sync::LazyLock;

use berth_core::{Error, Result};
use regex::Regex;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO: &str = "library";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// `domain/path[:tag][@digest]`, the grammar of distribution's
/// `ReferenceRegexp` with the domain made explicit.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain = format!(r"{domain_component}(?:\.{domain_component})*(?::[0-9]+)?");
    let component = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*";
    // Go's `\w` is ASCII; Rust's would be Unicode (and make this regex
    // megabytes large, with 127 copies of the Unicode word class).
    let tag = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    let pattern =
        format!(r"^({domain})/({component}(?:/{component})*)(?::({tag}))?(?:@({digest}))?$");
    Regex::new(&pattern).expect("the reference grammar is a valid regex")
});

static HEX64: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-f0-9]{64}$").expect("a valid regex"));

/// A parsed, normalized reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry, e.g. `docker.io`.
    pub domain: String,
    /// The repository path, e.g. `library/busybox`.
    pub path: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `s`, adding Docker's defaults (`docker.io`, `library/`) as
    /// distribution's `ParseNormalizedNamed` does.
    pub fn parse_normalized(s: &str) -> Result<Reference> {
        let invalid = |why: &str| {
            Error::invalid_argument(format!(
                "failed to parse {s:?}: invalid reference format{why}"
            ))
        };
        if HEX64.is_match(s) {
            return Err(Error::invalid_argument(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder.split(':').next().unwrap_or(&remainder);
        if remote.to_lowercase() != remote {
            return Err(invalid(": repository name must be lowercase"));
        }
        let full = format!("{domain}/{remainder}");
        let caps = REFERENCE.captures(&full).ok_or_else(|| invalid(""))?;
        let group = |i: usize| caps.get(i).map(|m| m.as_str().to_string());
        let reference = Reference {
            domain: group(1).unwrap_or_default(),
            path: group(2).unwrap_or_default(),
            tag: group(3),
            digest: group(4),
        };
        if reference.name().len() > NAME_TOTAL_LENGTH_MAX {
            return Err(Error::invalid_argument(format!(
                "failed to parse {s:?}: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
            )));
        }
        Ok(reference)
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Adds the tag `latest` to a reference with neither tag nor digest.
    pub fn tag_name_only(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }

    /// The name as Docker shows it: without `docker.io/` and, for
    /// official images, without `library/`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    fn suffix(&self) -> String {
        let mut out = String::new();
        if let Some(tag) = &self.tag {
            out += ":";
            out += tag;
        }
        if let Some(digest) = &self.digest {
            out += "@";
            out += digest;
        }
        out
    }

    /// The familiar form: `busybox:latest`, `foo/bar:1`.
    pub fn familiar_string(&self) -> String {
        self.familiar_name() + &self.suffix()
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.name(), self.suffix())
    }
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO}/{remainder}");
    }
    (domain, remainder)
}

/// A Docker reference as the full name containerd stores
/// (`ParseDockerRef`): `busybox` → `docker.io/library/busybox:latest`; a
/// reference with tag and digest keeps only the digest.
pub fn normalize(reference: &str) -> Result<String> {
    let mut parsed = Reference::parse_normalized(reference)
        .map_err(|err| err.context(format!("normalize image ref {reference:?}")))?;
    if parsed.digest.is_some() {
        parsed.tag = None;
    }
    Ok(parsed.tag_name_only().to_string())
}

/// An image name as Docker's `RepoTags` spell it: `docker.io/library/busybox`
/// → `busybox:latest`.
pub fn familiarize(name: &str) -> Result<String> {
    Ok(Reference::parse_normalized(name)?
        .tag_name_only()
        .familiar_string())
}

/// The object part of a containerd reference — what follows the first `:`
/// or `@` of the path (`latest`, `@sha256:…`) — or the whole name when it
/// does not parse as `host/path` (containerd's `ociReferenceName`).
pub fn oci_ref_name(name: &str) -> String {
    object(name).unwrap_or_else(|| name.to_string())
}

/// containerd's `reference.Parse(…).Object`, or `None` where it fails.
fn object(name: &str) -> Option<String> {
    if name.contains("://") {
        return None;
    }
    let end = name.find(['/', '?', '#']).unwrap_or(name.len());
    let authority = &name[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    // Go's url.Parse wants a numeric port after the host's last colon.
    if let Some((_, port)) = host.rsplit_once(':') {
        if !host.ends_with(']') && !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let path = &name[end..];
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let object = match path.find([':', '@']) {
        Some(i) => &path[i..],
        None => "",
    };
    Some(object.strip_prefix(':').unwrap_or(object).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_adds_docker_defaults() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.35", "docker.io/library/busybox:1.35"),
            ("foo/bar", "docker.io/foo/bar:latest"),
            ("index.docker.io/foo", "docker.io/library/foo:latest"),
            ("localhost:5000/x:y", "localhost:5000/x:y"),
            ("quay.io/a/b/c", "quay.io/a/b/c:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).expect(input), want, "{input}");
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            normalize(&format!("busybox:1@{digest}")).expect("digest"),
            format!("docker.io/library/busybox@{digest}")
        );
        // A tag's word characters are ASCII, as Go's `\w` is.
        let bad_tags = ["busybox:caf\u{e9}", "busybox:\u{663}"];
        for bad in ["", "Busybox", "a//b", "x:", &"a".repeat(64), "foo:bar:baz"]
            .into_iter()
            .chain(bad_tags)
        {
            assert!(normalize(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn familiarize_strips_defaults() {
        assert_eq!(
            familiarize("docker.io/library/busybox:latest").expect("ok"),
            "busybox:latest"
        );
        assert_eq!(
            familiarize("docker.io/library/busybox").expect("ok"),
            "busybox:latest"
        );
        assert_eq!(familiarize("docker.io/foo/bar:1").expect("ok"), "foo/bar:1");
        assert_eq!(
            familiarize("localhost:5000/a/b:c").expect("ok"),
            "localhost:5000/a/b:c"
        );
        assert_eq!(
            familiarize("import-2024-01-01:latest").expect("ok"),
            "import-2024-01-01:latest"
        );
        assert!(familiarize("<none>").is_err());
    }

    #[test]
    fn oci_ref_name_is_the_object() {
        assert_eq!(oci_ref_name("docker.io/library/busybox:latest"), "latest");
        assert_eq!(oci_ref_name("localhost:5000/x:1.0"), "1.0");
        assert_eq!(oci_ref_name("docker.io/library/busybox"), "");
        let digest = format!("sha256:{}", "b".repeat(64));
        assert_eq!(
            oci_ref_name(&format!("example.com/x@{digest}")),
            format!("@{digest}")
        );
        // Not host/path: kept whole.
        assert_eq!(oci_ref_name("busybox:latest"), "busybox:latest");
        assert_eq!(oci_ref_name("latest"), "");
    }
}
