//! The runtime v2 command line: Go-style flags (`-id X`, `--id=X`) and one
//! optional action word.

/// Flags containerd passes to a shim.
#[derive(Debug, Default, Clone)]
pub struct Args {
    pub namespace: String,
    pub id: String,
    /// The daemon's gRPC socket.
    pub address: String,
    pub publish_binary: String,
    /// Set for `delete`; `start` and serve use the working directory.
    pub bundle: Option<String>,
    pub debug: bool,
    /// `start`, `delete`, or none (serve).
    pub action: Option<String>,
}

impl Args {
    /// The flags the serving shim is started with by `start`: the same
    /// daemon, namespace and id, no action (containerd's runc shim passes
    /// the same flags to its serving copy).
    pub fn serve_flags(&self) -> Vec<String> {
        let mut flags = vec![
            "-namespace".to_string(),
            self.namespace.clone(),
            "-id".to_string(),
            self.id.clone(),
            "-address".to_string(),
            self.address.clone(),
        ];
        if !self.publish_binary.is_empty() {
            flags.extend(["-publish-binary".to_string(), self.publish_binary.clone()]);
        }
        if self.debug {
            flags.push("-debug".to_string());
        }
        flags
    }

    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut args = Args::default();
        while let Some(arg) = it.next() {
            let Some(flag) = arg.strip_prefix('-') else {
                args.action = Some(arg);
                continue;
            };
            let flag = flag.strip_prefix('-').unwrap_or(flag);
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            if matches!(name, "debug" | "v" | "version") {
                args.debug |= name == "debug";
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| format!("flag -{name} needs a value"))?,
            };
            match name {
                "namespace" => args.namespace = value,
                "id" => args.id = value,
                "address" => args.address = value,
                "publish-binary" => args.publish_binary = value,
                "bundle" => args.bundle = Some(value),
                // Flags of newer daemons we do not need (-socket, -ttrpc-address…).
                _ => {}
            }
        }
        if args.namespace.is_empty() || args.id.is_empty() {
            return Err("-namespace and -id are required".into());
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        Args::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_containerd_start_line() {
        let a =
            parse("-namespace ns -address /run/c.sock -publish-binary /bin/c -id x -debug start")
                .expect("parse");
        assert_eq!((a.namespace.as_str(), a.id.as_str()), ("ns", "x"));
        assert_eq!(a.address, "/run/c.sock");
        assert!(a.debug);
        assert_eq!(a.action.as_deref(), Some("start"));
    }

    #[test]
    fn parses_equals_form_and_bundle() {
        let a = parse("--namespace=n --id=i -bundle /b delete").expect("parse");
        assert_eq!(a.bundle.as_deref(), Some("/b"));
        assert_eq!(a.action.as_deref(), Some("delete"));
    }

    #[test]
    fn serve_flags_parse_back_without_an_action() {
        let a = parse("-namespace ns -address /a -publish-binary /p -id start -debug start")
            .expect("parse");
        let b = Args::parse(a.serve_flags().into_iter()).expect("parse serve flags");
        assert_eq!(b.action, None);
        assert_eq!(
            (b.namespace, b.id, b.address),
            ("ns".into(), "start".into(), "/a".into())
        );
        assert_eq!(b.publish_binary, "/p");
        assert!(b.debug);
    }

    #[test]
    fn missing_id_is_an_error() {
        assert!(parse("-namespace n start").is_err());
    }
}
