//! The fork: every `unsafe` of the built-in exec is here.
//!
//! The shim forks an intermediate child, which writes its OOM score, joins
//! the init's cgroups and namespaces and forks again (a pid namespace
//! applies to children only); the grandchild sets up the process and
//! executes it, and the intermediate reports the grandchild's pid and
//! exits. The grandchild is reparented to the shim, a child subreaper.
//!
//! Both report on one close-on-exec pipe with [`Message`]s: the pid, or the
//! step that failed and its errno. The pipe reaches EOF once the
//! intermediate has exited and the grandchild has executed (or died).
//!
//! Between fork and exec only async-signal-safe calls are made, on memory
//! prepared before the fork: no allocation, no lock.

use std::ffi::{c_char, CString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::plan::{Plan, Program};

/// What a child tells the shim: 12 bytes, one `write` (atomic on a pipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// The grandchild's pid (in the shim's pid namespace).
    Pid(u32),
    /// A step failed with an errno.
    Failed(Step, i32),
}

pub const MESSAGE_LEN: usize = 12;

impl Message {
    fn encode(self) -> [u8; MESSAGE_LEN] {
        let (kind, a, b) = match self {
            Message::Pid(pid) => (1u32, 0u32, pid),
            Message::Failed(step, errno) => (2, step as u32, errno as u32),
        };
        let mut buf = [0u8; MESSAGE_LEN];
        buf[0..4].copy_from_slice(&kind.to_ne_bytes());
        buf[4..8].copy_from_slice(&a.to_ne_bytes());
        buf[8..12].copy_from_slice(&b.to_ne_bytes());
        buf
    }

    pub fn decode(buf: &[u8; MESSAGE_LEN]) -> Option<Self> {
        let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        match word(0) {
            1 => Some(Message::Pid(word(8))),
            2 => Some(Message::Failed(Step::from_u32(word(4))?, word(8) as i32)),
            _ => None,
        }
    }
}

/// The steps of the children, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    OomScoreAdj,
    Dumpable,
    Cgroup,
    Setns,
    Fork,
    Setsid,
    Keyring,
    Rlimit,
    NoNewPrivs,
    Bounding,
    KeepCaps,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    Capset,
    Ambient,
    Stdio,
    /// `Program::Search` found nothing.
    NotFound,
    /// `Program::Path`: stat failed (errno), or is a directory or has no
    /// execute bit (EACCES).
    Lookup,
    Execve,
}

impl Step {
    const ALL: [Step; 21] = [
        Step::OomScoreAdj,
        Step::Dumpable,
        Step::Cgroup,
        Step::Setns,
        Step::Fork,
        Step::Setsid,
        Step::Keyring,
        Step::Rlimit,
        Step::NoNewPrivs,
        Step::Bounding,
        Step::KeepCaps,
        Step::Setgroups,
        Step::Setgid,
        Step::Setuid,
        Step::Chdir,
        Step::Capset,
        Step::Ambient,
        Step::Stdio,
        Step::NotFound,
        Step::Lookup,
        Step::Execve,
    ];

    fn from_u32(n: u32) -> Option<Self> {
        Step::ALL.get(n as usize).copied()
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::OomScoreAdj => "write oom_score_adj",
            Step::Dumpable => "set non-dumpable",
            Step::Cgroup => "join the container's cgroup",
            Step::Setns => "join the container's namespaces",
            Step::Fork => "fork into the container's pid namespace",
            Step::Setsid => "setsid",
            Step::Keyring => "join session keyring",
            Step::Rlimit => "setrlimit",
            Step::NoNewPrivs => "set no_new_privs",
            Step::Bounding => "drop bounding capabilities",
            Step::KeepCaps => "keep capabilities",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::Chdir => "chdir to cwd",
            Step::Capset => "capset",
            Step::Ambient => "raise ambient capabilities",
            Step::Stdio => "set up stdio",
            Step::NotFound => "look up the executable",
            Step::Lookup => "stat",
            Step::Execve => "exec",
        }
    }
}

/// `/proc/self/oom_score_adj`, written by the intermediate child.
const OOM_SCORE_ADJ: &std::ffi::CStr = c"/proc/self/oom_score_adj";
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Pointers into the plan's strings, built before the fork.
struct Prepared<'a> {
    plan: &'a Plan,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    stdio: [RawFd; 3],
    caps: [CapData; 2],
    report: RawFd,
}

fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Forks the intermediate child for `plan`, reporting on `report` (the
/// writing end of a close-on-exec pipe); returns its pid. `plan.stdio`
/// must be set.
pub fn fork(plan: &Plan, report: &impl AsRawFd) -> io::Result<i32> {
    let mut stdio = [-1; 3];
    for (slot, fd) in stdio.iter_mut().zip(&plan.stdio) {
        match fd {
            // Above 2 (the shim's own stdio is open), so the dup2s of the
            // child cannot overwrite a source still to be duplicated.
            Some(fd) if fd.as_raw_fd() > 2 => *slot = fd.as_raw_fd(),
            _ => return Err(io::Error::other("exec stdio not prepared")),
        }
    }
    let c = &plan.caps;
    let word = |m: u64, i: u32| (m >> (32 * i)) as u32;
    let caps = [0, 1].map(|i| CapData {
        effective: word(c.effective, i),
        permitted: word(c.permitted, i),
        inheritable: word(c.inheritable, i),
    });
    let prepared = Prepared {
        plan,
        argv: pointers(&plan.argv),
        envp: pointers(&plan.env),
        stdio,
        caps,
        report: report.as_raw_fd(),
    };
    // SAFETY: fork has no memory-safety preconditions by itself; the child
    // branch below only runs async-signal-safe code (see `intermediate`).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: this is the child of the fork: `intermediate` makes only
        // async-signal-safe calls on `prepared`, which was fully built
        // before the fork, and never returns.
        unsafe { intermediate(&prepared) }
    }
    Ok(pid)
}

/// Sends `msg` on the report pipe.
///
/// # Safety
/// Async-signal-safe; `report` must be the open report pipe.
unsafe fn send(report: RawFd, msg: Message) {
    let buf = msg.encode();
    // SAFETY: writes from a live stack buffer of its length.
    unsafe { libc::write(report, buf.as_ptr().cast(), buf.len()) };
}

/// Reports a failed step with the current errno and exits.
///
/// # Safety
/// Only in a forked child.
unsafe fn fail(report: RawFd, step: Step) -> ! {
    // SAFETY: the caller's (a forked child).
    unsafe { fail_with(report, step, errno()) }
}

/// # Safety
/// Only in a forked child.
unsafe fn fail_with(report: RawFd, step: Step, errno: i32) -> ! {
    // SAFETY: async-signal-safe write, then _exit (no atexit handlers, no
    // flushing of the parent's buffers).
    unsafe {
        send(report, Message::Failed(step, errno));
        libc::_exit(127)
    }
}

/// Joins the container's cgroups and namespaces, then forks the process.
///
/// # Safety
/// Only in the child of a fork of the shim, with `p` built before it.
unsafe fn intermediate(p: &Prepared<'_>) -> ! {
    let plan = p.plan;
    // SAFETY: only async-signal-safe system calls on descriptors and
    // NUL-terminated strings the plan owns, alive for the whole child.
    unsafe {
        // Not dumpable until the exec (which resets it): the container's
        // processes cannot ptrace this copy of the shim or open its
        // `/proc/PID/exe` (the host's shim binary) once it is in their pid
        // namespace, as runc's nsexec guards `runc init` (CVE-2019-5736).
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 {
            fail(p.report, Step::Dumpable);
        }
        reset_signals();
        if let Some(score) = &plan.oom_score_adj {
            let fd = libc::open(OOM_SCORE_ADJ.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let bytes = score.as_bytes();
            if fd < 0 || libc::write(fd, bytes.as_ptr().cast(), bytes.len()) < 0 {
                fail(p.report, Step::OomScoreAdj);
            }
            libc::close(fd);
        }
        for fd in &plan.cgroup_procs {
            // "0" moves the writer itself (cgroup v1 and v2).
            if libc::write(fd.as_raw_fd(), c"0".as_ptr().cast(), 1) < 0 {
                fail(p.report, Step::Cgroup);
            }
        }
        for (fd, kind) in &plan.namespaces {
            if libc::setns(fd.as_raw_fd(), *kind) < 0 {
                fail(p.report, Step::Setns);
            }
        }
        let pid = libc::fork();
        if pid < 0 {
            fail(p.report, Step::Fork);
        }
        if pid == 0 {
            process(p);
        }
        send(p.report, Message::Pid(pid as u32));
        libc::_exit(0)
    }
}

/// Default dispositions and an empty mask: ignored signals (the Rust
/// runtime ignores SIGPIPE) and the mask would survive the exec.
///
/// # Safety
/// Only in a forked child.
unsafe fn reset_signals() {
    // SAFETY: signal and sigprocmask are async-signal-safe; failures for
    // signals that cannot be changed (SIGKILL, SIGSTOP, libc's own) are
    // expected and harmless.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Sets up the exec'd process (in the container's namespaces) and runs it,
/// in runc's order (`setns_init_linux.go`, `finalizeNamespace`).
///
/// # Safety
/// Only in the grandchild, see [`intermediate`].
unsafe fn process(p: &Prepared<'_>) -> ! {
    let plan = p.plan;
    let report = p.report;
    // SAFETY: async-signal-safe system calls on memory the plan owns.
    unsafe {
        if libc::setsid() < 0 {
            fail(report, Step::Setsid);
        }
        if libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            plan.keyring.as_ptr(),
        ) < 0
            && errno() != libc::ENOSYS
        {
            fail(report, Step::Keyring);
        }
        let mut nofile = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) == 0
            && nofile.rlim_cur < nofile.rlim_max
        {
            nofile.rlim_cur = nofile.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &nofile) < 0 {
                fail(report, Step::Rlimit);
            }
        }
        for &(resource, soft, hard) in &plan.rlimits {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(resource as _, &limit) < 0 {
                fail(report, Step::Rlimit);
            }
        }
        if plan.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            fail(report, Step::NoNewPrivs);
        }
        for cap in 0..=plan.last_cap {
            if plan.caps.bounding & (1 << cap) == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
                && errno() != libc::EINVAL
            {
                fail(report, Step::Bounding);
            }
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 {
            fail(report, Step::KeepCaps);
        }
        if libc::setgroups(plan.groups.len(), plan.groups.as_ptr()) < 0 {
            fail(report, Step::Setgroups);
        }
        if libc::setgid(plan.gid) < 0 {
            fail(report, Step::Setgid);
        }
        // As root first; a directory only the user may enter is retried
        // after the switch (runc does the same).
        let chdir_early = libc::chdir(plan.cwd.as_ptr()) == 0;
        if libc::setuid(plan.uid) < 0 {
            fail(report, Step::Setuid);
        }
        if !chdir_early && libc::chdir(plan.cwd.as_ptr()) < 0 {
            fail(report, Step::Chdir);
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 {
            fail(report, Step::KeepCaps);
        }
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        if libc::syscall(libc::SYS_capset, &mut header, p.caps.as_ptr()) < 0 {
            fail(report, Step::Capset);
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) < 0
            && errno() != libc::EINVAL
        {
            fail(report, Step::Ambient);
        }
        // A capability missing from the permitted or inheritable set cannot
        // be raised: runc (gocapability) ignores that, and so does this.
        for cap in 0..=plan.last_cap {
            if plan.caps.ambient & (1 << cap) != 0 {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                );
            }
        }
        for (target, &fd) in p.stdio.iter().enumerate() {
            if libc::dup2(fd, target as RawFd) < 0 {
                fail(report, Step::Stdio);
            }
        }
        // Nothing of the shim's past the three streams (the report pipe is
        // close-on-exec already); failure (an old kernel) leaves what Rust
        // opened close-on-exec anyway.
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        );
        let path = lookup(report, &plan.program);
        libc::execve(path, p.argv.as_ptr(), p.envp.as_ptr());
        fail(report, Step::Execve)
    }
}

/// Go's `exec.LookPath`: a regular or other non-directory file with an
/// execute bit.
///
/// # Safety
/// Only in the grandchild.
unsafe fn lookup(report: RawFd, program: &Program) -> *const c_char {
    // SAFETY: stat into a zeroed stack buffer of the right type, on
    // NUL-terminated paths the plan owns.
    unsafe {
        let check = |path: &CString| -> i32 {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(path.as_ptr(), &mut st) < 0 {
                return errno();
            }
            // Go's `findExecutable`: a directory is "permission denied" too.
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR || st.st_mode & 0o111 == 0 {
                return libc::EACCES;
            }
            0
        };
        match program {
            Program::Path(path) => match check(path) {
                0 => path.as_ptr(),
                e => fail_with(report, Step::Lookup, e),
            },
            Program::Search(candidates) => {
                for path in candidates {
                    if check(path) == 0 {
                        return path.as_ptr();
                    }
                }
                fail_with(report, Step::NotFound, libc::ENOENT)
            }
        }
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for msg in [
            Message::Pid(4242),
            Message::Failed(Step::Execve, libc::ENOENT),
            Message::Failed(Step::OomScoreAdj, 1),
        ] {
            assert_eq!(Message::decode(&msg.encode()), Some(msg));
        }
        assert_eq!(Message::decode(&[9; MESSAGE_LEN]), None);
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(*step as usize, i);
        }
    }
}
