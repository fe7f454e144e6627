//! What the built-in exec does, worked out before the fork: every path,
//! string and descriptor the child needs, read from the container's OCI
//! spec, the exec's OCI process and the init's `/proc` entries. Anything
//! the built-in exec does not implement is a [`Fallback`] with its reason,
//! and the exec goes to runc.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::caps::{self, CapSets};

/// Why an exec goes to runc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback(pub String);

fn fallback<T>(reason: impl Into<String>) -> Result<T, Fallback> {
    Err(Fallback(reason.into()))
}

/// The environment variable that turns the built-in exec off for a shim
/// (and, inherited from berthd, for every shim): `BERTH_SHIM_EXEC=runc`.
pub const EXEC_ENV: &str = "BERTH_SHIM_EXEC";
/// The container annotation that turns it off for one container.
pub const EXEC_ANNOTATION: &str = "io.berth.shim.exec";

/// Where the exec'd program is looked up (Go's `exec.LookPath`, as runc's
/// init does it inside the container).
#[derive(Debug)]
pub enum Program {
    /// A name with a slash: used as is.
    Path(CString),
    /// Each `PATH` directory joined with the name, in order.
    Search(Vec<CString>),
}

/// Everything the child does, in the order it does it.
#[derive(Debug)]
pub struct Plan {
    /// `/proc/self/oom_score_adj` content for the intermediate child.
    pub oom_score_adj: Option<CString>,
    /// The init's `cgroup.procs` files, one per hierarchy, open for writing.
    pub cgroup_procs: Vec<OwnedFd>,
    /// The init's namespaces that differ from the shim's, with their
    /// `CLONE_NEW*` type, in joining order (the mount namespace last).
    pub namespaces: Vec<(OwnedFd, libc::c_int)>,
    /// `_ses.<container id>`, the session keyring runc's exec joins.
    pub keyring: CString,
    /// The exec's rlimits `(resource, soft, hard)`. Before them the soft
    /// RLIMIT_NOFILE is raised to the hard one: runc's init, a Go 1.19+
    /// program, does that as it starts and executes the process without
    /// restoring it. (runc sets the exec's rlimits from its parent with
    /// prlimit, racing that raise: the order here is the one that keeps
    /// what the spec asks.)
    pub rlimits: Vec<(u32, u64, u64)>,
    pub no_new_privs: bool,
    pub caps: CapSets,
    pub last_cap: u32,
    pub groups: Vec<libc::gid_t>,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub cwd: CString,
    pub program: Program,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// The exec's stdin, stdout and stderr (`/dev/null` where it has none).
    pub stdio: [Option<OwnedFd>; 3],
    /// `args[0]`, for error messages.
    pub arg0: String,
}

/// The namespaces an exec joins, as `(name under /proc/PID/ns, CLONE_NEW*)`,
/// in joining order. The cgroup namespace follows the cgroup writes (done
/// before any setns) and the mount namespace comes last.
const NAMESPACES: [(&str, libc::c_int); 6] = [
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

impl Plan {
    /// The plan for exec'ing `process` (the exec's OCI process, terminal
    /// flag and OOM clamp applied) in container `id`, whose spec is
    /// `spec` and whose init is `init_pid`. `oom_floor` is the shim's own
    /// OOM score (a score below it is raised to it).
    pub fn prepare(
        id: &str,
        spec: &Value,
        process: &Value,
        init_pid: u32,
        oom_floor: i64,
    ) -> Result<Plan, Fallback> {
        if std::env::var(EXEC_ENV).is_ok_and(|v| v == "runc") {
            return fallback(format!("{EXEC_ENV}=runc"));
        }
        if spec["annotations"][EXEC_ANNOTATION] == "runc" {
            return fallback(format!("annotation {EXEC_ANNOTATION}=runc"));
        }
        check_supported(spec, process)?;
        if !nix::unistd::geteuid().is_root() {
            return fallback("the shim is not root");
        }
        check_init(init_pid)?;
        let container = &spec["process"];

        let oom_score_adj = container["oomScoreAdj"]
            .as_i64()
            .map(|s| s.max(oom_floor))
            .map(|s| CString::new(s.to_string()).expect("digits have no NUL"));
        let cgroup_procs = cgroup_procs(init_pid)?;
        let namespaces = namespaces(init_pid)?;
        let keyring = cstring(&format!("_ses.{id}"))?;

        // Only the exec's own: runc 1.1 does not apply the container's to
        // an exec (see `Plan::rlimits`).
        let rlimits = rlimits(process["rlimits"].as_array().map_or(&[][..], |v| v))?;
        let no_new_privs = process["noNewPrivileges"].as_bool().unwrap_or(false);
        let caps = if process["capabilities"].is_object() {
            CapSets::from_spec(&process["capabilities"])
        } else {
            CapSets::from_spec(&container["capabilities"])
        };
        let last_cap = caps::last_cap();

        let user = &process["user"];
        let uid = id_field(&user["uid"])?;
        let gid = id_field(&user["gid"])?;
        let mut groups = Vec::new();
        for g in user["additionalGids"].as_array().map_or(&[][..], |v| v) {
            groups.push(id_field(g)?);
        }

        let cwd = process["cwd"].as_str().unwrap_or_default();
        if !cwd.starts_with('/') {
            return fallback("cwd is not an absolute path (runc reports it)");
        }
        let cwd = cstring(cwd)?;
        let args: Vec<&str> = match process["args"].as_array() {
            Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).collect(),
            _ => return fallback("no args (runc reports it)"),
        };
        if args.len() != process["args"].as_array().map_or(0, Vec::len) {
            return fallback("an argument is not a string");
        }
        let argv = args
            .iter()
            .map(|a| cstring(a))
            .collect::<Result<Vec<_>, _>>()?;

        let mut env = environment(process["env"].as_array().map_or(&[][..], |v| v))?;
        if !env
            .iter()
            .any(|(k, v)| k.as_str() == "HOME" && !v.is_empty())
        {
            let home = home_of(init_pid, uid);
            match env.iter_mut().find(|(k, _)| k.as_str() == "HOME") {
                Some((_, v)) => *v = home,
                None => env.push(("HOME".into(), home)),
            }
        }
        let path = env
            .iter()
            .find(|(k, _)| k.as_str() == "PATH")
            .map(|(_, v)| v.clone());
        let program = program(args[0], path.as_deref())?;
        let env = env
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Plan {
            oom_score_adj,
            cgroup_procs,
            namespaces,
            keyring,
            rlimits,
            no_new_privs,
            caps,
            last_cap,
            groups,
            uid,
            gid,
            cwd,
            program,
            argv,
            env,
            stdio: [None, None, None],
            arg0: args[0].to_string(),
        })
    }
}

/// Refuses what the built-in exec does not implement.
fn check_supported(spec: &Value, process: &Value) -> Result<(), Fallback> {
    let container = &spec["process"];
    let linux = &spec["linux"];
    if process["terminal"].as_bool().unwrap_or(false) {
        return fallback("a terminal");
    }
    if !linux["seccomp"].is_null() {
        return fallback("seccomp in the container spec");
    }
    for p in [container, process] {
        if p["apparmorProfile"].as_str().is_some_and(|s| !s.is_empty()) {
            return fallback("an apparmor profile");
        }
        if p["selinuxLabel"].as_str().is_some_and(|s| !s.is_empty()) {
            return fallback("an selinux label");
        }
        for key in ["scheduler", "ioPriority", "execCPUAffinity"] {
            if !p[key].is_null() {
                return fallback(format!("process {key}"));
            }
        }
    }
    if !process["user"]["umask"].is_null() {
        return fallback("a umask");
    }
    for key in ["intelRdt", "personality", "uidMappings", "gidMappings"] {
        if !linux[key].is_null() {
            return fallback(format!("linux {key}"));
        }
    }
    for ns in linux["namespaces"].as_array().map_or(&[][..], |v| v) {
        match ns["type"].as_str() {
            Some("user") => return fallback("a user namespace"),
            Some("time") => return fallback("a time namespace"),
            _ => {}
        }
    }
    Ok(())
}

/// The init must be alive and still the shim's (its pid not reused): the
/// shim reaps it, so while it is a live child of the shim the pid is its.
fn check_init(pid: u32) -> Result<(), Fallback> {
    if pid == 0 {
        return fallback("no init pid");
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return fallback(format!("init {pid} is gone"));
    };
    // pid (comm) state ppid …: comm may hold spaces and parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("");
    let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if state == "Z" || state == "X" || ppid != std::process::id() {
        return fallback(format!("init {pid} is gone"));
    }
    Ok(())
}

fn cstring(s: &str) -> Result<CString, Fallback> {
    CString::new(s).or_else(|_| fallback(format!("{s:?} holds a NUL byte")))
}

fn id_field(v: &Value) -> Result<u32, Fallback> {
    if v.is_null() {
        return Ok(0);
    }
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .map_or_else(|| fallback(format!("bad uid/gid {v}")), Ok)
}

/// The init's `cgroup.procs` in every hierarchy it belongs to.
fn cgroup_procs(pid: u32) -> Result<Vec<OwnedFd>, Fallback> {
    let Ok(own) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return fallback(format!("init {pid} is gone"));
    };
    let mut fds = Vec::new();
    for dir in cgroup_dirs(&own, shim_cgroup_mounts()?)? {
        if frozen(&dir) {
            // runc refuses ("cannot exec in a paused container"); joining
            // would freeze the child before it reports.
            return fallback(format!("cgroup {} is frozen", dir.display()));
        }
        let procs = dir.join("cgroup.procs");
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&procs)
            .or_else(|e| fallback(format!("opening {}: {e}", procs.display())))?;
        fds.push(OwnedFd::from(file));
    }
    Ok(fds)
}

/// The shim's cgroup mounts, read once: the host's mount table can be
/// long, and its cgroup hierarchies do not move under a running shim (one
/// mounted later is "not mounted" here, and runc runs those execs).
fn shim_cgroup_mounts() -> Result<&'static [CgroupMount], Fallback> {
    static MOUNTS: std::sync::OnceLock<Vec<CgroupMount>> = std::sync::OnceLock::new();
    if let Some(mounts) = MOUNTS.get() {
        return Ok(mounts);
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .or_else(|e| fallback(format!("reading mountinfo: {e}")))?;
    Ok(MOUNTS.get_or_init(|| cgroup_mounts(&mountinfo)))
}

/// Whether a cgroup is frozen (v1 `freezer.state`, v2 `cgroup.freeze`).
fn frozen(dir: &Path) -> bool {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let v1 = read("freezer.state");
    let v1 = v1.trim();
    (!v1.is_empty() && v1 != "THAWED") || read("cgroup.freeze").trim() == "1"
}

/// A mounted cgroup hierarchy: its mount point and, for v1, the
/// controllers (and `name=`) of its super options; `None` for cgroup2.
#[derive(Debug, PartialEq, Eq)]
pub struct CgroupMount {
    pub point: PathBuf,
    pub controllers: Option<Vec<String>>,
}

/// The cgroup mounts of a mountinfo text whose root is the hierarchy's.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        let Some((fields, rest)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let rest: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 5 || rest.len() < 3 || fields[3] != "/" {
            continue;
        }
        let controllers = match rest[0] {
            "cgroup2" => None,
            "cgroup" => Some(rest[2].split(',').map(String::from).collect()),
            _ => continue,
        };
        mounts.push(CgroupMount {
            point: PathBuf::from(fields[4]),
            controllers,
        });
    }
    mounts
}

/// The directories of a `/proc/PID/cgroup` text in `mounts`.
pub fn cgroup_dirs(text: &str, mounts: &[CgroupMount]) -> Result<Vec<PathBuf>, Fallback> {
    let mut dirs = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(list), Some(path)) => (id, list, path),
            _ => return fallback(format!("cgroup line {line:?}")),
        };
        let mount = mounts.iter().find(|m| match &m.controllers {
            None => list.is_empty(),
            Some(opts) => !list.is_empty() && list.split(',').all(|c| opts.iter().any(|o| o == c)),
        });
        let Some(mount) = mount else {
            return fallback(format!("cgroup hierarchy {list:?} is not mounted"));
        };
        let relative = path.trim_start_matches('/');
        if relative.split('/').any(|c| c == "..") || path.ends_with(" (deleted)") {
            return fallback(format!("cgroup path {path:?}"));
        }
        dirs.push(mount.point.join(relative));
    }
    Ok(dirs)
}

/// The init's namespaces the shim is not in, open.
fn namespaces(pid: u32) -> Result<Vec<(OwnedFd, libc::c_int)>, Fallback> {
    let ns_id = |path: &str| std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
    let theirs = ns_id(&format!("/proc/{pid}/ns/user"));
    if theirs.is_err() || theirs.ok() != ns_id("/proc/self/ns/user").ok() {
        return fallback("the init is in another user namespace (or gone)");
    }
    let mut fds = Vec::new();
    for (name, kind) in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{name}");
        let file = File::open(&path).or_else(|e| fallback(format!("opening {path}: {e}")))?;
        let theirs = file
            .metadata()
            .map(|m| (m.dev(), m.ino()))
            .or_else(|e| fallback(format!("{path}: {e}")))?;
        if ns_id(&format!("/proc/self/ns/{name}")).ok() == Some(theirs) {
            continue;
        }
        fds.push((OwnedFd::from(file), kind));
    }
    Ok(fds)
}

/// `RLIMIT_*` names and numbers.
const RLIMITS: [(&str, u32); 16] = [
    ("RLIMIT_CPU", 0),
    ("RLIMIT_FSIZE", 1),
    ("RLIMIT_DATA", 2),
    ("RLIMIT_STACK", 3),
    ("RLIMIT_CORE", 4),
    ("RLIMIT_RSS", 5),
    ("RLIMIT_NPROC", 6),
    ("RLIMIT_NOFILE", 7),
    ("RLIMIT_MEMLOCK", 8),
    ("RLIMIT_AS", 9),
    ("RLIMIT_LOCKS", 10),
    ("RLIMIT_SIGPENDING", 11),
    ("RLIMIT_MSGQUEUE", 12),
    ("RLIMIT_NICE", 13),
    ("RLIMIT_RTPRIO", 14),
    ("RLIMIT_RTTIME", 15),
];

fn rlimits(list: &[Value]) -> Result<Vec<(u32, u64, u64)>, Fallback> {
    let mut out = Vec::new();
    for r in list {
        let name = r["type"].as_str().unwrap_or_default();
        let Some(&(_, number)) = RLIMITS.iter().find(|(n, _)| *n == name) else {
            return fallback(format!("rlimit {name:?} (runc reports it)"));
        };
        let (Some(hard), Some(soft)) = (r["hard"].as_u64(), r["soft"].as_u64()) else {
            return fallback(format!("rlimit {r}"));
        };
        out.push((number, soft, hard));
    }
    Ok(out)
}

/// The process's environment as runc's init leaves it: each `K=V` set in
/// turn (a repeated name keeps its first place and takes the last value).
pub fn environment(list: &[Value]) -> Result<Vec<(String, String)>, Fallback> {
    let mut env: Vec<(String, String)> = Vec::new();
    for e in list {
        let Some((k, v)) = e.as_str().and_then(|s| s.split_once('=')) else {
            return fallback(format!("environment entry {e} (runc reports it)"));
        };
        if k.is_empty() {
            return fallback("an environment entry without a name (runc reports it)");
        }
        match env.iter_mut().find(|(name, _)| name == k) {
            Some((_, value)) => *value = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    }
    Ok(env)
}

/// The most of the container's `/etc/passwd` read.
const PASSWD_LIMIT: u64 = 1 << 20;

/// The home directory of `uid` in the container's `/etc/passwd`, `/` when
/// it has none (runc's default for `HOME`). The file is the container's:
/// it is resolved inside the container's root (a link to a host file or
/// to `/dev/zero` stays inside it), and read up to a limit.
fn home_of(pid: u32, uid: u32) -> String {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let passwd =
        berth_core::rootpath::read_in_root(&root, "/etc/passwd", PASSWD_LIMIT).unwrap_or_default();
    home_in_passwd(&passwd, uid).unwrap_or_else(|| "/".into())
}

pub fn home_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
    })
}

/// Where `name` is looked up: as is with a slash, else on `PATH`.
pub fn program(name: &str, path: Option<&str>) -> Result<Program, Fallback> {
    if name.contains('/') {
        return Ok(Program::Path(cstring(name)?));
    }
    let path = path.unwrap_or_default();
    if path.is_empty() {
        return Ok(Program::Search(Vec::new()));
    }
    let mut candidates = Vec::new();
    for dir in path.split(':') {
        if !dir.starts_with('/') {
            return fallback(format!("PATH entry {dir:?} is not absolute"));
        }
        candidates.push(cstring(&Path::new(dir).join(name).to_string_lossy())?);
    }
    Ok(Program::Search(candidates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cgroups_of_a_hybrid_host() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw shared:13 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/systemd rw shared:15 - cgroup cgroup rw,xattr,name=systemd
36 30 0:31 /sub /mnt/elsewhere rw shared:16 - cgroup cgroup rw,pids
";
        let mounts = cgroup_mounts(mountinfo);
        assert_eq!(mounts.len(), 4, "{mounts:?}");
        let own = "4:memory:/berth/c1\n3:cpu,cpuacct:/berth/c1\n1:name=systemd:/x\n0::/berth/c1\n";
        assert_eq!(
            cgroup_dirs(own, &mounts).expect("dirs"),
            [
                "/sys/fs/cgroup/memory/berth/c1",
                "/sys/fs/cgroup/cpu,cpuacct/berth/c1",
                "/sys/fs/cgroup/systemd/x",
                "/sys/fs/cgroup/unified/berth/c1",
            ]
            .map(PathBuf::from)
        );
        // pids is mounted only below its root: runc runs that exec.
        assert!(cgroup_dirs("5:pids:/berth/c1\n", &mounts).is_err());
        assert!(cgroup_dirs("4:memory:/../etc\n", &mounts).is_err());
    }

    #[test]
    fn environment_as_runc_sets_it() {
        let env = environment(&[json!("A=1"), json!("B=x=y"), json!("A=2")]).expect("env");
        assert_eq!(env, [("A".into(), "2".into()), ("B".into(), "x=y".into())]);
        assert!(environment(&[json!("NOEQUALS")]).is_err());
        assert!(environment(&[json!("=v")]).is_err());
    }

    #[test]
    fn programs_are_looked_up_like_go() {
        match program("sh", Some("/usr/bin:/bin")).expect("program") {
            Program::Search(c) => assert_eq!(c, [c"/usr/bin/sh", c"/bin/sh"]),
            other => panic!("{other:?}"),
        }
        match program("./run", Some("/bin")).expect("program") {
            Program::Path(p) => assert_eq!(p.as_c_str(), c"./run"),
            other => panic!("{other:?}"),
        }
        match program("sh", None).expect("program") {
            Program::Search(c) => assert!(c.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(program("sh", Some("bin:/bin")).is_err());
    }

    #[test]
    fn home_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n";
        assert_eq!(home_in_passwd(passwd, 33).as_deref(), Some("/var/www"));
        assert_eq!(home_in_passwd(passwd, 1000), None);
    }

    #[test]
    fn unsupported_settings_fall_back() {
        let plain = json!({"process": {}, "linux": {"namespaces": [{"type": "pid"}]}});
        assert_eq!(check_supported(&plain, &json!({})), Ok(()));
        let seccomp = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}});
        assert!(check_supported(&seccomp, &json!({})).is_err());
        let userns = json!({"linux": {"namespaces": [{"type": "user"}]}});
        assert!(check_supported(&userns, &json!({})).is_err());
        assert!(check_supported(&plain, &json!({"terminal": true})).is_err());
        assert!(check_supported(&plain, &json!({"apparmorProfile": "x"})).is_err());
        assert!(check_supported(&plain, &json!({"user": {"umask": 18}})).is_err());
    }
}
