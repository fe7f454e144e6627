//! Platforms (`os/arch[/variant]`) and how images are matched to them, as
//! containerd's `platforms` package does it.
//!
//! A specifier such as `linux/arm64` or `amd64` is parsed and *normalized*
//! (`x86_64` → `amd64`, `aarch64` → `arm64`, `armhf` → `arm/v7`, …). A
//! [`Matcher`] answers which platforms an operation accepts and, of two,
//! which it prefers:
//! - [`Matcher::only`] accepts a platform and those that run on it (amd64
//!   runs 386; arm/v7 runs v6 and v5; arm64 runs arm/v8…v5), preferring the
//!   platform itself — the default for imports (`platforms.Default()`);
//! - [`Matcher::only_strict`] accepts exactly one platform — the default for
//!   exports and for `--platform` on import;
//! - [`Matcher::all`] accepts everything (`--all-platforms`).

use berth_core::{Error, Result};

pub use crate::spec::Platform;

/// The platform of this host: `linux/amd64` on x86-64.
pub fn default_spec() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", ""),
        "x86" => ("386", ""),
        "aarch64" => ("arm64", ""),
        "arm" => ("arm", "v7"),
        "powerpc64" => ("ppc64le", ""),
        "loongarch64" => ("loong64", ""),
        "mips64" => ("mips64le", ""),
        other => (other, ""),
    };
    Platform {
        os: std::env::consts::OS.to_string(),
        architecture: architecture.to_string(),
        variant: variant.to_string(),
        ..Platform::default()
    }
}

/// `os/arch[/variant]`, or `unknown` without an OS (`platforms.Format`).
pub fn format(p: &Platform) -> String {
    if p.os.is_empty() {
        return "unknown".to_string();
    }
    [p.os.as_str(), p.architecture.as_str(), p.variant.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses a specifier: `os`, `arch`, `os/arch` or `os/arch/variant`.
pub fn parse(specifier: &str) -> Result<Platform> {
    if specifier.contains('*') {
        return Err(Error::not_implemented(format!(
            "{specifier:?}: wildcards not yet supported: not implemented"
        )));
    }
    let parts: Vec<&str> = specifier.split('/').collect();
    for part in &parts {
        let valid = !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(Error::invalid_argument(format!(
                "{part:?} is an invalid component of {specifier:?}: platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument"
            )));
        }
    }
    let host = default_spec();
    let mut p = Platform::default();
    match parts.as_slice() {
        [one] => {
            let os = normalize_os(one);
            if KNOWN_OS.contains(&os.as_str()) {
                p.os = os;
                p.architecture = host.architecture;
                if p.architecture == "arm" && host.variant != "v7" {
                    p.variant = host.variant;
                }
                return Ok(p);
            }
            (p.architecture, p.variant) = normalize_arch(one, "");
            if p.architecture == "arm" && p.variant == "v7" {
                p.variant.clear();
            }
            if KNOWN_ARCH.contains(&p.architecture.as_str()) {
                p.os = host.os;
                return Ok(p);
            }
            Err(Error::invalid_argument(format!(
                "{specifier:?}: unknown operating system or architecture: invalid argument"
            )))
        }
        [os, arch] => {
            p.os = normalize_os(os);
            (p.architecture, p.variant) = normalize_arch(arch, "");
            if p.architecture == "arm" && p.variant == "v7" {
                p.variant.clear();
            }
            Ok(p)
        }
        [os, arch, variant] => {
            p.os = normalize_os(os);
            (p.architecture, p.variant) = normalize_arch(arch, variant);
            if p.architecture == "arm64" && p.variant.is_empty() {
                p.variant = "v8".to_string();
            }
            Ok(p)
        }
        _ => Err(Error::invalid_argument(format!(
            "{specifier:?}: cannot parse platform specifier: invalid argument"
        ))),
    }
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    if os == "macos" {
        "darwin".to_string()
    } else {
        os
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" => ("amd64".into(), String::new()),
        "aarch64" | "arm64" => {
            let variant = if matches!(variant.as_str(), "8" | "v8") {
                String::new()
            } else {
                variant
            };
            ("arm64".into(), variant)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let variant = match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), variant)
        }
        _ => (arch, variant),
    }
}

/// Normalizes OS, architecture and variant (`platforms.Normalize`).
pub fn normalize(p: &Platform) -> Platform {
    let (architecture, variant) = normalize_arch(&p.architecture, &p.variant);
    Platform {
        os: normalize_os(&p.os),
        architecture,
        variant,
        ..p.clone()
    }
}

/// Which platforms an operation accepts, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Any platform, none preferred.
    All,
    /// These platforms (normalized), the first preferred.
    Ordered(Vec<Platform>),
}

impl Matcher {
    /// Every platform (`platforms.All`).
    pub fn all() -> Matcher {
        Matcher::All
    }

    /// `platform` and the platforms that run on it (`platforms.Only`).
    pub fn only(platform: &Platform) -> Matcher {
        Matcher::Ordered(vector(&normalize(platform)))
    }

    /// Exactly `platform` (`platforms.OnlyStrict`).
    pub fn only_strict(platform: &Platform) -> Matcher {
        Matcher::Ordered(vec![normalize(platform)])
    }

    /// The host's platform and those that run on it (`platforms.Default()`).
    pub fn host() -> Matcher {
        Matcher::only(&default_spec())
    }

    /// Exactly the host's platform (`platforms.DefaultStrict()`).
    pub fn host_strict() -> Matcher {
        Matcher::only_strict(&default_spec())
    }

    /// Whether `platform` is accepted.
    pub fn matches(&self, platform: &Platform) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Ordered(list) => list.iter().any(|m| same(m, platform)),
        }
    }

    /// Whether `a` is preferred to `b`.
    pub fn less(&self, a: &Platform, b: &Platform) -> bool {
        let Matcher::Ordered(list) = self else {
            return false;
        };
        for m in list {
            let (am, bm) = (same(m, a), same(m, b));
            if am && !bm {
                return true;
            }
            if am || bm {
                return false;
            }
        }
        false
    }
}

/// Whether `candidate` normalizes to the (normalized) `want`.
fn same(want: &Platform, candidate: &Platform) -> bool {
    let c = normalize(candidate);
    want.os == c.os && want.architecture == c.architecture && want.variant == c.variant
}

/// A platform and the older ones it can run (`platformVector`).
fn vector(p: &Platform) -> Vec<Platform> {
    let mut out = vec![p.clone()];
    let with = |architecture: &str, variant: &str| Platform {
        architecture: architecture.to_string(),
        variant: variant.to_string(),
        ..p.clone()
    };
    match p.architecture.as_str() {
        "amd64" => out.push(with("386", &p.variant)),
        "arm" => {
            if let Ok(version) = p.variant.trim_start_matches('v').parse::<u32>() {
                for v in (5..version).rev() {
                    out.push(with("arm", &format!("v{v}")));
                }
            }
        }
        "arm64" => {
            let variant = if p.variant.is_empty() {
                "v8"
            } else {
                &p.variant
            };
            out.extend(vector(&with("arm", variant)));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str, variant: &str) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.into(),
            ..Platform::default()
        }
    }

    #[test]
    fn parse_normalizes_like_containerd() {
        assert_eq!(parse("linux/amd64").expect("ok"), p("linux", "amd64", ""));
        assert_eq!(parse("linux/x86_64").expect("ok"), p("linux", "amd64", ""));
        assert_eq!(parse("Linux/aarch64").expect("ok"), p("linux", "arm64", ""));
        assert_eq!(
            parse("linux/arm64/v8").expect("ok"),
            p("linux", "arm64", "v8")
        );
        assert!(Matcher::only_strict(&parse("linux/arm64/v8").expect("ok"))
            .matches(&p("linux", "arm64", "")));
        assert_eq!(parse("linux/arm").expect("ok"), p("linux", "arm", ""));
        assert_eq!(parse("linux/arm/v6").expect("ok"), p("linux", "arm", "v6"));
        assert_eq!(parse("linux").expect("ok").os, "linux");
        assert_eq!(parse("arm64").expect("ok").architecture, "arm64");
        assert!(parse("linux/").is_err());
        assert!(parse("nonsense").is_err());
        assert!(parse("a/b/c/d").is_err());
        assert!(parse("linux/*").is_err());
    }

    #[test]
    fn format_joins_non_empty_parts() {
        assert_eq!(format(&p("linux", "arm", "v7")), "linux/arm/v7");
        assert_eq!(format(&p("linux", "amd64", "")), "linux/amd64");
        assert_eq!(format(&p("", "amd64", "")), "unknown");
    }

    #[test]
    fn only_accepts_compatible_platforms_in_order() {
        let m = Matcher::only(&p("linux", "arm", "v7"));
        assert!(m.matches(&p("linux", "arm", "v6")));
        assert!(m.matches(&p("linux", "armhf", "")));
        assert!(!m.matches(&p("linux", "arm", "v8")));
        assert!(m.less(&p("linux", "arm", "v7"), &p("linux", "arm", "v6")));
        assert!(!m.less(&p("linux", "arm", "v5"), &p("linux", "arm", "v6")));
        let amd = Matcher::only(&p("linux", "amd64", ""));
        assert!(amd.matches(&p("linux", "386", "")));
        let strict = Matcher::only_strict(&p("linux", "amd64", ""));
        assert!(!strict.matches(&p("linux", "386", "")));
        assert!(strict.matches(&p("linux", "x86_64", "")));
        assert!(Matcher::all().matches(&p("plan9", "mips", "")));
    }
}
