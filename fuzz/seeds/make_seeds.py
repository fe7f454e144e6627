#!/usr/bin/env python3
"""Writes the seed corpora of `shim_ttrpc`, `events_envelope` and `cri_log`.

The ttrpc and events seeds are the frames and messages berthd and
containerd 1.6 send (field numbers from containerd's task/v2 shim.proto,
events/task.proto, types/event.proto and ttrpc's request.proto), encoded
here in the protobuf wire format. The CRI log seeds are real container
output (busybox) behind the target's 12-byte header.

    fuzz/seeds/make_seeds.py    # from anywhere; rewrites fuzz/corpus/<target>/
"""
import os
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """One field: int (varint), bool, str or bytes (length-delimited)."""
    if isinstance(value, bool):
        return varint(num << 3) + varint(int(value))
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(field(n, v) for n, v in fields if v not in (None, "", 0, b"", False))


def any_(type_url, value):
    return msg((1, type_url), (2, value))


def timestamp(seconds, nanos):
    return msg((1, seconds), (2, nanos))


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- ttrpc frames into the shim ------------------------------------------

NS = msg((1, "containerd-namespace-ttrpc"), (2, "default"))
BUNDLE = "/run/berth/io.containerd.runtime.v2.task/default/c1"


def request(service, method, payload, timeout=0):
    return msg((1, service), (2, method), (3, payload), (4, timeout), (5, NS))


def frame(stream_id, body, kind=1, flags=0):
    return struct.pack(">IIBB", len(body), stream_id, kind, flags) + body


def task(method, payload, version=2, timeout=0):
    return request(f"containerd.task.v{version}.Task", method, payload, timeout)


mount = msg((1, "overlay"), (2, "overlay"),
            (4, "lowerdir=/var/lib/berth/snapshots/1/fs"),
            (4, "upperdir=/var/lib/berth/snapshots/2/fs"),
            (4, "workdir=/var/lib/berth/snapshots/2/work"))
runc_options = msg((6, "runc"), (7, "/run/berth/runc"), (3, "/berth/shim"), (9, True))
create = msg((1, "c1"), (2, BUNDLE), (3, mount),
             (5, "/run/berth/fifo/default/c1/c1-stdin"),
             (6, "/run/berth/fifo/default/c1/c1-stdout"),
             (7, "/run/berth/fifo/default/c1/c1-stderr"),
             (10, any_("containerd.runc.v1.Options", runc_options)))
process_spec = b'{"args":["sh","-c","echo hi"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}}'
execp = msg((1, "c1"), (2, "exec1"), (3, True), (5, "/run/berth/fifo/default/c1/exec1-stdout"),
            (7, any_("types.containerd.io/opencontainers/runtime-spec/1/Process", process_spec)))
resources = b'{"memory":{"limit":104857600},"cpu":{"shares":512}}'
update = msg((1, "c1"), (2, any_("types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", resources)),
             (3, msg((1, "io.kubernetes.cri.container-type"), (2, "container"))))

SHIM = [
    ("connect", task("Connect", msg((1, "c1")))),
    ("create", task("Create", create, timeout=10_000_000_000)),
    ("start", task("Start", msg((1, "c1")))),
    ("state-exec", task("State", msg((1, "c1"), (2, "exec1")))),
    ("kill-all", task("Kill", msg((1, "c1"), (3, 9), (4, True)))),
    ("exec", task("Exec", execp)),
    ("resize", task("ResizePty", msg((1, "c1"), (2, "exec1"), (3, 80), (4, 24)))),
    ("close-io", task("CloseIO", msg((1, "c1"), (2, "exec1"), (3, True)))),
    ("update", task("Update", update)),
    ("wait", task("Wait", msg((1, "c1")))),
    ("pids", task("Pids", msg((1, "c1")))),
    ("stats", task("Stats", msg((1, "c1")))),
    ("delete", task("Delete", msg((1, "c1")))),
    ("shutdown", task("Shutdown", msg((1, "c1")))),
    ("v3-state", task("State", msg((1, "c1")), version=3)),
    ("unknown-service", request("containerd.task.v9.Task", "State", msg((1, "c1")))),
    ("unknown-method", task("Frobnicate", msg((1, "c1")))),
]
for i, (name, body) in enumerate(SHIM):
    write("shim_ttrpc", f"{name}.bin", frame(2 * i + 1, body))
# A session as containerd drives a container, on one connection.
session = [task("Connect", msg((1, "c1"))), task("Create", create), task("Start", msg((1, "c1"))),
           task("Wait", msg((1, "c1"))), task("Delete", msg((1, "c1")))]
write("shim_ttrpc", "session.bin", b"".join(frame(2 * i + 1, b) for i, b in enumerate(session)))
# Framing edges: a data frame, a frame cut short, a length past 4 MiB.
write("shim_ttrpc", "data-frame.bin", frame(1, b"x", kind=3, flags=1))
write("shim_ttrpc", "cut.bin", frame(1, task("Start", msg((1, "c1"))))[:-3])
write("shim_ttrpc", "too-long.bin", struct.pack(">IIBB", 5 << 20, 1, 1, 0))

# --- events envelopes forwarded by shims ---------------------------------

EXITED = timestamp(1_709_210_096, 120_000_000)


def forward(topic, type_url, event, namespace="default"):
    envelope = msg((1, EXITED), (2, namespace), (3, topic), (4, any_(type_url, event)))
    return msg((1, envelope))


task_io = msg((2, "/run/berth/fifo/default/c1/c1-stdout"), (3, "/run/berth/fifo/default/c1/c1-stderr"))
EVENTS = [
    ("task-create", "/tasks/create", "containerd.events.TaskCreate",
     msg((1, "c1"), (2, BUNDLE), (3, mount), (4, task_io), (6, 4242))),
    ("task-start", "/tasks/start", "containerd.events.TaskStart", msg((1, "c1"), (2, 4242))),
    ("task-exit", "/tasks/exit", "containerd.events.TaskExit",
     msg((1, "c1"), (2, "c1"), (3, 4242), (4, 137), (5, EXITED))),
    ("task-delete", "/tasks/delete", "containerd.events.TaskDelete",
     msg((1, "c1"), (2, 4242), (3, 137), (4, EXITED))),
    ("task-oom", "/tasks/oom", "containerd.events.TaskOOM", msg((1, "c1"))),
    ("task-exec-added", "/tasks/exec-added", "containerd.events.TaskExecAdded", msg((1, "c1"), (2, "exec1"))),
    ("task-exec-started", "/tasks/exec-started", "containerd.events.TaskExecStarted",
     msg((1, "c1"), (2, "exec1"), (3, 4243))),
    ("task-paused", "/tasks/paused", "containerd.events.TaskPaused", msg((1, "c1"))),
    ("task-resumed", "/tasks/resumed", "containerd.events.TaskResumed", msg((1, "c1"))),
]
for name, topic, type_url, event in EVENTS:
    write("events_envelope", f"{name}.bin", forward(topic, type_url, event))
write("events_envelope", "k8s-oom.bin",
      forward("/tasks/oom", "containerd.events.TaskOOM", msg((1, "c2")), namespace="k8s.io"))
write("events_envelope", "no-envelope.bin", b"")
write("events_envelope", "bad-topic.bin",
      forward("tasks//exit", "containerd.events.TaskExit", msg((1, "c1"))))

# --- CRI log lines ------------------------------------------------------

NANOS = 1_709_210_096_120_000_000


def header(stderr, max_len, chunk):
    return struct.pack(">BHBQ", int(stderr), max_len, chunk, NANOS)


def busybox(*args):
    return subprocess.run(["/bin/busybox", *args], capture_output=True, check=False).stdout


LOGS = [
    ("ls", header(False, 16384, 0), busybox("ls", "-l", "/")),
    ("help-split", header(False, 32, 7), busybox("--help")[:2000]),
    ("crlf", header(True, 0, 3), b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody without newline"),
    ("long-line", header(False, 8, 0), b"a" * 40 + b"\n" + b"b" * 8 + b"\n"),
    ("cr-at-split", header(False, 4, 5), b"abcd\r\nabcde\r\n\r\r\n"),
    ("binary", header(True, 64, 1), bytes(range(256))),
    ("empty-lines", header(False, 1, 0), b"\n\n\n"),
]
for name, head, output in LOGS:
    write("cri_log", f"{name}.bin", head + output)
