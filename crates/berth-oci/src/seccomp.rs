//! Seccomp profiles for the OCI spec's `linux.seccomp`.
//!
//! [`default_profile`] is containerd 1.6's default profile
//! (`contrib/seccomp`'s `DefaultProfile`): everything not listed fails
//! with `EPERM` (`SCMP_ACT_ERRNO`); a fixed list of syscalls is allowed,
//! `personality` only for a few personas, some syscalls only for the
//! machine's architecture, others only when the process's bounding set
//! holds the capability they need; without `CAP_SYS_ADMIN`, `clone` may
//! not create namespaces and `clone3` fails with `ENOSYS` (so that C
//! libraries fall back to `clone`).

use crate::Spec;
use serde_json::{json, Value};

/// Syscalls every container may make.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// The personas `personality` may switch to: `PER_LINUX`, `PER_LINUX32`,
/// `UNAME26`, `PER_LINUX32|UNAME26`, and the query `0xffffffff`.
const PERSONAS: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// `CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP`.
const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000 | 0x0200_0000;

/// `ENOSYS`.
const ENOSYS: u32 = 38;

/// The architectures the filter covers and the syscalls only they have.
#[cfg(target_arch = "x86_64")]
fn arch() -> (&'static [&'static str], &'static [&'static str]) {
    (
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        &["arch_prctl", "modify_ldt"],
    )
}

/// The architectures the filter covers and the syscalls only they have.
#[cfg(target_arch = "aarch64")]
fn arch() -> (&'static [&'static str], &'static [&'static str]) {
    (
        &["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    )
}

/// The architectures the filter covers and the syscalls only they have.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn arch() -> (&'static [&'static str], &'static [&'static str]) {
    (&[], &[])
}

/// The syscalls a capability in the bounding set adds.
fn by_capability(cap: &str) -> &'static [&'static str] {
    match cap {
        "CAP_DAC_READ_SEARCH" => &["open_by_handle_at"],
        "CAP_SYS_ADMIN" => &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        "CAP_SYS_BOOT" => &["reboot"],
        "CAP_SYS_CHROOT" => &["chroot"],
        "CAP_SYS_MODULE" => &["delete_module", "init_module", "finit_module"],
        "CAP_SYS_PACCT" => &["acct"],
        "CAP_SYS_PTRACE" => &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        "CAP_SYS_RAWIO" => &["iopl", "ioperm"],
        "CAP_SYS_TIME" => &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        "CAP_SYS_TTY_CONFIG" => &["vhangup"],
        "CAP_SYS_NICE" => &["get_mempolicy", "mbind", "set_mempolicy"],
        "CAP_SYSLOG" => &["syslog"],
        "CAP_BPF" => &["bpf"],
        "CAP_PERFMON" => &["perf_event_open"],
        _ => &[],
    }
}

fn allow(names: &[&str]) -> Value {
    json!({ "names": names, "action": "SCMP_ACT_ALLOW" })
}

/// Whether the running kernel is at least 4.8, from which `ptrace` cannot
/// be used to get around seccomp and so is allowed.
fn kernel_allows_ptrace() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (4, 8)
}

/// containerd's default profile (`contrib/seccomp`'s `DefaultProfile`) for
/// `spec`: its bounding capabilities decide which extra syscalls are
/// allowed.
pub fn default_profile(spec: &Spec) -> Value {
    let (arches, arch_syscalls) = arch();
    let mut syscalls = vec![allow(ALLOWED)];
    for persona in PERSONAS {
        syscalls.push(json!({
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{ "index": 0, "value": persona, "op": "SCMP_CMP_EQ" }],
        }));
    }
    if kernel_allows_ptrace() {
        syscalls.push(allow(&["ptrace"]));
    }
    if !arch_syscalls.is_empty() {
        syscalls.push(allow(arch_syscalls));
    }
    let bounding = spec
        .process
        .as_ref()
        .and_then(|p| p.capabilities.as_ref())
        .map(|c| c.bounding.as_slice())
        .unwrap_or_default();
    for cap in bounding {
        let names = by_capability(cap);
        if !names.is_empty() {
            syscalls.push(allow(names));
        }
    }
    if !bounding.iter().any(|c| c == "CAP_SYS_ADMIN") {
        syscalls.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{
                "index": 0,
                "value": CLONE_NAMESPACE_FLAGS,
                "valueTwo": 0,
                "op": "SCMP_CMP_MASKED_EQ",
            }],
        }));
        syscalls.push(json!({
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": ENOSYS,
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": arches,
        "syscalls": syscalls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Capabilities, Process};

    fn spec_with(caps: &[&str]) -> Spec {
        Spec {
            process: Some(Process {
                capabilities: Some(Capabilities {
                    bounding: caps.iter().map(|c| c.to_string()).collect(),
                    ..Capabilities::default()
                }),
                ..Process::default()
            }),
            ..Spec::default()
        }
    }

    /// The rules that allow `name` without conditions.
    fn allows(profile: &Value, name: &str) -> bool {
        profile["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .any(|r| {
                r["action"] == "SCMP_ACT_ALLOW"
                    && r.get("args").is_none()
                    && r["names"]
                        .as_array()
                        .expect("names")
                        .iter()
                        .any(|n| n == name)
            })
    }

    #[test]
    fn everything_unlisted_is_denied_and_common_syscalls_are_allowed() {
        let profile = default_profile(&spec_with(crate::DEFAULT_CAPABILITIES));
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        for name in ["read", "write", "openat", "execve", "exit_group", "chroot"] {
            assert!(allows(&profile, name), "{name}");
        }
        for name in ["mount", "unshare", "setns", "reboot", "init_module", "bpf"] {
            assert!(!allows(&profile, name), "{name}");
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(profile["architectures"][0], "SCMP_ARCH_X86_64");
    }

    #[test]
    fn without_sys_admin_clone_cannot_make_namespaces_and_clone3_is_enosys() {
        let profile = default_profile(&spec_with(&["CAP_CHOWN"]));
        assert!(!allows(&profile, "clone"));
        assert!(!allows(&profile, "chroot"));
        let rules = profile["syscalls"].as_array().expect("syscalls");
        let clone = rules
            .iter()
            .find(|r| r["names"][0] == "clone")
            .expect("clone rule");
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["value"], 0x7e02_0000u64);
        let clone3 = rules
            .iter()
            .find(|r| r["names"][0] == "clone3")
            .expect("clone3 rule");
        assert_eq!(clone3["errnoRet"], 38);
    }

    #[test]
    fn capabilities_add_their_syscalls() {
        let profile = default_profile(&spec_with(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]));
        for name in [
            "mount",
            "setns",
            "clone",
            "clone3",
            "process_vm_readv",
            "kcmp",
        ] {
            assert!(allows(&profile, name), "{name}");
        }
        assert!(!profile["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .any(|r| r["action"] == "SCMP_ACT_ERRNO"));
    }
}
