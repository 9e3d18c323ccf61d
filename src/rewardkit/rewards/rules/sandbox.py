"""The sandbox that runs untrusted Python for the code reward (:mod:`.code`).

Isolation is layered, and each layer is used only where it works on this machine (probed once per
process; :func:`sandbox_info` says what was chosen and why the rest fell back):

* a fresh unprivileged uid per run (root only), so the candidate cannot touch host files, signal other
  sandboxes, and ``RLIMIT_NPROC`` (which root ignores) caps its processes and threads;
* ``unshare``: a network namespace with only loopback, a PID namespace (every process dies with the
  sandbox's init), a mount namespace with private tmpfs over the world-writable dirs (``/tmp`` ...)
  and a fresh ``/proc``;
* rlimits set by the trusted bootstrap before the candidate runs (CPU, address space, file size,
  open files, core dumps, processes);
* an audit hook (PEP 578) that refuses sockets, process creation, ``ctypes``, signals to others and
  writes outside the work dir; it is a tripwire, not a boundary (the layers above are);
* ``python -I -S -B``, an empty environment, a new session killed as a whole, a wall-clock deadline,
  a watchdog that ends the sandbox if this process dies, and output read through bounded buffers.

Results come back over a dedicated pipe, one JSON line per test as it finishes, so garbage on
stdout cannot confuse them and tests finished before a timeout still count. The candidate runs in the
same interpreter as the test harness, so a determined adversary can forge its own results; the
sandbox protects the host and other samples, not the verdict against such code.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any


FILE_MB = 16  # RLIMIT_FSIZE: largest file the candidate may write
TMPFS_MB = 64  # size of the private /tmp (the work dir lives in it); other private dirs get 4 MB
NOFILE = 64
NPROC = 32  # processes + threads of the sandbox uid
MAX_OUTPUT = 64 * 1024  # bytes kept of each of stdout / stderr
UID_RANGE = (1_500_000_000, 1_900_000_000)  # fresh uids, far from any real account


# --------------------------------------------------------------------------- code and tests


@dataclass
class SandboxResult:
    """One sandboxed run. ``status``: ok | syntax_error | error (top level raised) | memory |
    timeout | crash (died before reporting every test) | sandbox_error (could not run: undecided)."""

    status: str
    passed: int = 0
    total: int = 0
    per_test: list[bool] = field(default_factory=list)
    error: str | None = None  # the first failure, short
    reason: str | None = None  # why the status is not ok
    stdout: str = ""
    stderr: str = ""
    output_bytes: int = 0  # stdout + stderr bytes produced, kept or not
    truncated: bool = False
    returncode: int | None = None
    elapsed: float = 0.0
    blocked: list[str] = field(default_factory=list)  # operations the audit hook refused
    uid: int | None = None  # the sandbox uid (None: same uid as this process)
    pid: int | None = None  # pid of the session leader (its session id)
    tier: str = ""


# --------------------------------------------------------------------------- the child

_BOOTSTRAP = r'''
import os, sys
def _boot(out_fd):
    import ast, builtins, json, resource, select, stat, threading, _posixsubprocess
    _read, _write, _getpid, _exit = os.read, os.write, os.getpid, os._exit
    _dict, _exec, _compile, _isinstance, _type, _str, _len, _enumerate = dict, exec, compile, isinstance, type, str, len, enumerate
    _BaseException, _MemoryError, _OSError, _PermissionError = BaseException, MemoryError, OSError, PermissionError
    chunks = []
    while not chunks or not chunks[-1].endswith(b"\n"):
        chunk = _read(0, 1 << 16)
        if not chunk:
            _exit(3)
        chunks.append(chunk)
    job = json.loads(b"".join(chunks))
    nonce, dumps = job["nonce"].encode(), json.dumps

    def emit(obj):
        obj["pid"] = _getpid()
        data = nonce + dumps(obj).encode() + b"\n"
        while data:
            try:
                data = data[_write(out_fd, data):]
            except InterruptedError:
                continue
            except _OSError:
                return

    life = os.dup(0)  # stays open while the parent lives; EOF = parent gone
    nul = os.open(os.devnull, os.O_RDWR)
    os.dup2(nul, 0)
    os.close(nul)

    def watchdog():
        try:
            select.select([life], [], [], job["hard_timeout"])
        except _BaseException:
            pass
        _exit(124)

    threading.Thread(target=watchdog, daemon=True).start()
    if job["make_workdir"]:
        os.mkdir(job["workdir"], 0o700)
    os.chdir(job["workdir"])
    failed = []
    for name, soft, hard in job["limits"]:
        res = getattr(resource, name, None)
        try:
            cur = resource.getrlimit(res)[1]
            if cur != resource.RLIM_INFINITY:
                soft, hard = min(soft, cur), min(hard, cur)
            resource.setrlimit(res, (soft, hard))
        except (_OSError, ValueError, TypeError):
            failed.append(name)

    def fmt(err):
        try:
            text = _type(err).__name__
            msg = _str(err)
            return (text + ": " + msg if msg else text)[:300]
        except _BaseException:
            return "unprintable exception"

    def blocked_spawn(*args, **kwargs):
        raise _PermissionError("sandbox: process creation is not allowed")

    if job["audit"]:
        _posixsubprocess.fork_exec = blocked_spawn  # it raises no audit event of its own
        sys.addaudithook(_guard(os.path.realpath(job["workdir"]), emit, _PermissionError))
    emit({"ev": "ready", "failed_limits": failed})
    tests = []
    try:
        if job["mode"] == "script":
            tree = ast.parse(job["tests"], "<tests>")
            if any(_isinstance(n, ast.Assert) for n in tree.body):
                tests = [(_isinstance(n, ast.Assert), _compile(ast.Module([n], []), "<tests>", "exec")) for n in tree.body]
            else:
                tests = [(True, _compile(tree, "<tests>", "exec"))]
        else:
            tests = [(True, _compile(src, "<test %d>" % i, "exec")) for i, src in _enumerate(job["tests"])]
    except _BaseException as err:
        emit({"ev": "harness_error", "error": fmt(err)})
        _exit(4)
    clean_builtins = _dict(builtins.__dict__)
    out_streams = (sys.stdout, sys.stderr)

    def finish():  # no interpreter shutdown: the candidate's atexit handlers and finalizers never run
        for stream in out_streams:
            try:
                stream.flush()
            except _BaseException:
                pass
        emit({"ev": "done"})
        _exit(0)

    try:
        solution = _compile(job["code"], "<solution>", "exec")
    except _BaseException as err:
        emit({"ev": "load", "ok": False, "kind": "memory" if _isinstance(err, _MemoryError) else "syntax", "error": fmt(err)})
        finish()
    ns = {"__name__": "solution"}
    try:
        _exec(solution, ns)
    except _BaseException as err:
        emit({"ev": "load", "ok": False, "kind": "memory" if _isinstance(err, _MemoryError) else "exception", "error": fmt(err)})
        finish()
    emit({"ev": "load", "ok": True})
    shared = None
    index = 0
    for is_test, test in tests:
        if job["mode"] == "list" or shared is None:
            shared = _dict(ns)
            shared["__builtins__"] = _dict(clean_builtins)  # tests see builtins as they were
        try:
            _exec(test, shared)
            ok, error, memory = True, None, False
        except _BaseException as err:
            ok, error, memory = False, fmt(err), _isinstance(err, _MemoryError)
        if is_test:
            emit({"ev": "test", "i": index, "ok": ok, "error": error, "memory": memory})
            index += 1
        elif not ok:
            emit({"ev": "setup_error", "error": error, "memory": memory})
    finish()


def _guard(root, emit, PermissionError_):
    """The audit hook. Everything it calls is bound here, so the candidate cannot monkeypatch it."""
    import stat
    lstat, readlink, getcwd, fsdecode, getpid = os.lstat, os.readlink, os.getcwd, os.fsdecode, os.getpid
    islnk, isinstance_, int_, str_, len_ = stat.S_ISLNK, isinstance, int, str, len
    OSError_, BaseException_ = OSError, BaseException
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    deny_events = frozenset({
        "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
        "pty.spawn", "os.killpg", "resource.setrlimit", "resource.prlimit", "ctypes.dlopen", "ctypes.dlsym",
        "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function", "gc.get_objects", "gc.get_referrers",
        "gc.get_referents", "os.setns", "os.unshare", "sys.remote_exec",
    })
    deny_imports = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi", "_testinternalcapi"})
    # event -> ((path index, dir_fd index or None, follow the last symlink), ...)
    path_events = {
        "os.remove": ((0, 1, False),), "os.rmdir": ((0, 1, False),), "os.mkdir": ((0, 2, False),),
        "os.rename": ((0, 2, False), (1, 3, False)), "os.link": ((0, 2, True), (1, 3, False)),
        "os.symlink": ((1, 2, False),), "os.truncate": ((0, None, True),), "os.chmod": ((0, 2, True),),
        "os.chown": ((0, 3, True),), "os.chflags": ((0, None, True),), "os.utime": ((0, 3, True),),
        "os.mkfifo": ((0, 2, False),), "os.mknod": ((0, 3, False),), "os.setxattr": ((0, None, True),),
        "os.removexattr": ((0, None, True),), "shutil.rmtree": ((0, 1, False),),
    }
    seen = set()

    def resolve(path, follow):
        out, parts, hops = "", [p for p in path.split("/") if p and p != "."], 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                out = out.rpartition("/")[0]
                continue
            nxt = out + "/" + part
            try:
                st = lstat(nxt)
            except OSError_:
                out = nxt
                continue
            if islnk(st.st_mode) and (follow or parts):
                hops += 1
                if hops > 40:
                    raise OSError_("symlink loop")
                target = readlink(nxt)
                if target.startswith("/"):
                    out = ""
                parts = [p for p in target.split("/") if p and p != "."] + parts
            else:
                out = nxt
        return out or "/"

    def inside(path, dir_fd, follow):
        try:
            if isinstance_(path, int_):
                full = readlink("/proc/self/fd/%d" % path)
            else:
                path = fsdecode(path)
                if path.startswith("/"):
                    full = path
                elif isinstance_(dir_fd, int_) and dir_fd >= 0:
                    full = readlink("/proc/self/fd/%d" % dir_fd) + "/" + path
                else:
                    full = getcwd() + "/" + path
            full = resolve(full, follow)
        except BaseException_:
            return False
        return full == root or full.startswith(root + "/") or full == "/dev/null"

    def deny(what):
        if what not in seen:
            seen.add(what)
            emit({"ev": "blocked", "what": what})
        raise PermissionError_("sandbox: " + what + " is not allowed")

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance_(path, int_):
                return
            writing = (isinstance_(mode, str_) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (isinstance_(flags, int_) and flags & write_flags)
            if writing and not inside(path, None, True):
                deny("open for writing outside the work dir")
        elif event in path_events:
            for i, fd_i, follow in path_events[event]:
                if i < len_(args) and not inside(args[i], args[fd_i] if fd_i is not None and fd_i < len_(args) else None, follow):
                    deny(event + " outside the work dir")
        elif event in deny_events or event.startswith("socket."):
            deny(event)
        elif event == "import":
            if args[0] in deny_imports or args[0].partition(".")[0] in deny_imports:
                deny("import " + args[0])
        elif event == "os.kill":
            if args[0] != getpid():
                deny(event)

    return hook


_boot(int(sys.argv[1]))
'''

_PROBE = """
import json, os, socket, sys
try:
    ifaces = sorted(name for _, name in socket.if_nameindex())
except OSError:
    ifaces = None
exe = os.path.realpath(sys.executable or "")
print(json.dumps({"uid": os.getuid(), "groups": os.getgroups(), "pid": os.getpid(), "ifaces": ifaces,
                  "version": list(sys.version_info[:2]), "own_stdlib": exe.startswith(sys.base_prefix.rstrip("/") + "/")}))
"""

# sh script run as root inside the new mount namespace: private tmpfs over the world-writable
# dirs, then drop to the sandbox uid for good (no new privileges) and exec the interpreter.
_MOUNT_SH = """
uid=$1; big=$2; small=$3; shift 3
for d in /tmp /var/tmp /dev/shm /run/lock; do
  if [ -d "$d" ]; then
    size=$small; [ "$d" = /tmp ] && size=$big
    mount -t tmpfs -o "size=${size}m,mode=1777,nosuid,nodev" tmpfs "$d" || exit 125
  fi
done
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --nnp -- "$@"
"""


# --------------------------------------------------------------------------- tiers and probing


@dataclass(frozen=True)
class _Tier:
    name: str
    uid: bool = False  # runs as a fresh unprivileged uid
    netns: bool = False
    pidns: bool = False
    private_tmp: bool = False  # mount namespace with private /tmp etc.

    def command(self, python: list[str], uid: int | None) -> tuple[list[str], dict[str, Any]]:
        unshare = shutil.which("unshare") or "unshare"
        if self.name == "root+mountns":
            sh = ["/bin/sh", "-c", _MOUNT_SH, "sh", str(uid), str(TMPFS_MB), "4"]
            return [unshare, "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--", *sh, *python], {}
        if self.name == "root+ns":
            return [unshare, "--net", "--pid", "--fork", "--kill-child", "--setuid", str(uid), "--setgid", str(uid), "--", *python], {}
        if self.name == "root+uid":
            return python, {"user": uid, "group": uid, "extra_groups": []}
        if self.name == "userns":
            return [unshare, "--user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--", *python], {}
        return python, {}


def _tiers() -> list[_Tier]:
    has_unshare = shutil.which("unshare") is not None
    if os.geteuid() == 0:
        tiers = [_Tier("root+mountns", True, True, True, True), _Tier("root+ns", True, True, True)] if has_unshare else []
        return tiers + [_Tier("root+uid", uid=True), _Tier("none")]
    return ([_Tier("userns", netns=True, pidns=True)] if has_unshare else []) + [_Tier("none")]


def _interpreters() -> list[str]:
    """This interpreter first; others of the same version for when it is not readable by the
    sandbox uid (e.g. a venv under /root)."""
    out, seen = [], set()
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for name in (sys.executable, version, "python3"):
        path = name if os.path.isabs(name) else shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
        if path and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            out.append(path)
    return out


_LOCK = threading.Lock()
_SANDBOX: dict[str, Any] | None = None


def _reset_after_fork() -> None:  # a pool worker forked while another thread probed must not inherit a held lock
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def sandbox_info() -> dict[str, Any]:
    """The isolation chosen on this machine: tier, interpreter, which layers are active, and notes on
    the layers that fell back (probed once per process by running a probe program through each tier)."""
    global _SANDBOX
    with _LOCK:
        if _SANDBOX is None:
            _SANDBOX = _probe()
        return _SANDBOX


def _probe() -> dict[str, Any]:
    notes: list[str] = []
    for tier in _tiers():
        for python in _interpreters() if tier.uid else [sys.executable]:
            res = _execute(tier, python, _PROBE, "list", [], 0, 10.0, 256, audit=False, max_output=MAX_OUTPUT)
            problem = None
            try:
                seen = json.loads(res.stdout.strip().splitlines()[-1]) if res.status == "ok" else None
            except (ValueError, IndexError):
                seen = None
            if seen is None:
                problem = f"{res.status}: {res.reason or ''} {res.stderr.strip()[-200:]}".strip()
            elif seen["version"] != list(sys.version_info[:2]):
                problem = f"Python {seen['version']} is not this Python"
            elif not seen["own_stdlib"]:
                problem = "the interpreter cannot read its own standard library as the sandbox uid"
            elif tier.uid and (seen["uid"] != res.uid or seen["groups"]):
                problem = f"uid/groups not dropped ({seen['uid']}, {seen['groups']})"
            elif tier.netns and seen["ifaces"] not in (["lo"], []):
                problem = f"network namespace shows interfaces {seen['ifaces']}"
            elif tier.pidns and seen["pid"] != 1:
                problem = "PID namespace not in effect"
            if problem is None:
                features = {"uid": tier.uid, "netns": tier.netns, "pidns": tier.pidns, "private_tmp": tier.private_tmp, "nproc": tier.uid, "rlimits": True, "audit_hook": True}
                return {"tier": tier.name, "python": python, "features": features, "notes": notes}
            notes.append(f"{tier.name} with {python}: {problem}")
    raise RuntimeError("no way to run the sandbox: " + "; ".join(notes))


# --------------------------------------------------------------------------- the parent side


def run_program(code: str, mode: str, payload: Any, total: int, timeout: float, memory_mb: int, *, audit: bool, max_output: int) -> SandboxResult:
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if memory_mb < 64:
        raise ValueError(f"memory_mb must be at least 64 (the interpreter needs it), got {memory_mb}")
    try:
        info = sandbox_info()
    except RuntimeError as err:
        return SandboxResult("sandbox_error", total=total, per_test=[False] * total, reason=str(err))
    tier = next(t for t in _tiers() if t.name == info["tier"])
    return _execute(tier, info["python"], code, mode, payload, total, timeout, memory_mb, audit=audit, max_output=max_output)


class _Capped:
    """Keeps the first ``cap`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int):
        self.cap, self.data, self.size = cap, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]


def _execute(tier: _Tier, python: str, code: str, mode: str, payload: Any, total: int, timeout: float, memory_mb: int, *, audit: bool, max_output: int) -> SandboxResult:
    uid = secrets.SystemRandom().randrange(*UID_RANGE) if tier.uid else None
    host_dir = None if tier.private_tmp else tempfile.mkdtemp(prefix="rewardkit-code-")
    workdir = "/tmp/rewardkit-sandbox" if tier.private_tmp else host_dir
    if host_dir is not None and uid is not None:
        os.chown(host_dir, uid, uid)
    limits = [
        ("RLIMIT_CPU", math.ceil(timeout) + 1, math.ceil(timeout) + 2),
        ("RLIMIT_AS", memory_mb << 20, memory_mb << 20),
        ("RLIMIT_FSIZE", FILE_MB << 20, FILE_MB << 20),
        ("RLIMIT_NOFILE", NOFILE, NOFILE),
        ("RLIMIT_CORE", 0, 0),
    ] + ([("RLIMIT_NPROC", NPROC, NPROC)] if tier.uid else [])
    nonce = secrets.token_hex(8)
    job = {"nonce": nonce, "code": code, "mode": mode, "tests": payload, "audit": audit, "limits": limits, "workdir": workdir, "make_workdir": tier.private_tmp, "hard_timeout": timeout + 5}
    job_bytes = json.dumps(job).encode() + b"\n"
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir, "MALLOC_ARENA_MAX": "2"}
    result_r, result_w = os.pipe()
    argv, extra = tier.command([python, "-I", "-S", "-B", "-c", _BOOTSTRAP, str(result_w)], uid)
    out = SandboxResult("sandbox_error", total=total, uid=uid, tier=tier.name)
    start = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(result_w,), cwd=host_dir or "/", env=env, start_new_session=True, **extra)
        except OSError as err:
            out.reason = f"could not start the sandbox: {err}"
            return out
        finally:
            os.close(result_w)
        out.pid = proc.pid
        streams = _pump(proc, job_bytes, result_r, start + timeout, max_output, (1 << 20) + 512 * total, uid, tier.pidns)
        out.returncode = proc.returncode
    finally:
        os.close(result_r)
        if host_dir is not None:
            _remove_tree(host_dir)
    out.elapsed = time.monotonic() - start
    stdout, stderr, results, timed_out = streams
    out.stdout, out.stderr = stdout.data.decode("utf-8", "replace"), stderr.data.decode("utf-8", "replace")
    out.output_bytes = stdout.size + stderr.size
    out.truncated = stdout.size > len(stdout.data) or stderr.size > len(stderr.data)
    _interpret(out, _events(results.data, nonce), total, timed_out, timeout)
    return out


def _pump(proc: Any, job: bytes, result_r: int, deadline: float, max_output: int, max_results: int, uid: int | None, pidns: bool) -> tuple[_Capped, _Capped, _Capped, bool]:
    """Feed the job, read stdout/stderr/results through bounded buffers until the child is done or
    the deadline passes; then kill the whole session and reap it."""
    stdout, stderr, results = _Capped(max_output), _Capped(max_output), _Capped(max_results)
    sinks = {proc.stdout.fileno(): stdout, proc.stderr.fileno(): stderr, result_r: results}
    stdin = proc.stdin.fileno()
    for fd in (*sinks, stdin):
        os.set_blocking(fd, False)
    sel = selectors.DefaultSelector()
    for fd in sinks:
        sel.register(fd, selectors.EVENT_READ)
    sel.register(stdin, selectors.EVENT_WRITE)
    pending, timed_out, exited = memoryview(job), False, False
    try:
        while any(key.fd != stdin for key in sel.get_map().values()):
            now = time.monotonic()
            if now >= deadline:
                timed_out = not exited and b'"ev": "done"' not in results.data
                break
            if not exited and _exited(proc.pid):
                exited, deadline = True, min(deadline, now + 0.3)  # only stragglers could still hold the pipes
            for key, _ in sel.select(min(deadline - now, 0.1)):
                if key.fd == stdin:
                    try:
                        pending = pending[os.write(stdin, pending):]
                    except BlockingIOError:
                        continue
                    except OSError:  # the child is gone; its exit tells the rest
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(stdin)  # kept open: the child's watchdog waits for its EOF
                    continue
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if chunk:
                    sinks[key.fd].add(chunk)
                else:
                    sel.unregister(key.fd)
    finally:
        sel.close()
        _kill_session(proc, uid, pidns)
        for fd, sink in sinks.items():  # whatever was written before the end
            try:
                while chunk := os.read(fd, 1 << 16):
                    sink.add(chunk)
            except OSError:
                pass
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
    return stdout, stderr, results, timed_out


def _exited(pid: int) -> bool:
    """Whether the child exited, without reaping it (its pid keeps naming the process group)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_session(proc: Any, uid: int | None, pidns: bool) -> None:
    if pidns and not _exited(proc.pid):
        # Kill only the namespace's init: unshare reaps it once the kernel has killed every other
        # process in the namespace, so nothing outlives this call (not even a zombie).
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
                for child in fh.read().split():
                    os.kill(int(child), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        end = time.monotonic() + 1.0
        while not _exited(proc.pid) and time.monotonic() < end:
            time.sleep(0.002)
    running = not _exited(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the leader is unreaped, so the group id is still ours
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None and (running or not pidns):  # a process that left the session keeps the fresh uid
        _kill_uid(uid)
    proc.wait()


def _kill_uid(uid: int, patience: float = 2.0) -> None:
    """SIGKILL every live process of a sandbox uid until none is left (the uid is fresh, so nothing
    else has it; zombies are left to their reaper)."""
    end = time.monotonic() + patience
    while True:
        alive = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as fh:
                    fields = dict(line.split(":", 1) for line in fh if line.startswith(("State:", "Uid:")))
                if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith(("Z", "X")):
                    alive = True
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, KeyError, ValueError):
                continue
        if not alive or time.monotonic() > end:
            return
        time.sleep(0.005)


def _remove_tree(path: str) -> None:
    for _ in range(3):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:  # a non-root run whose candidate removed its own permissions
            for root, dirs, _files in os.walk(path):
                for d in dirs:
                    if not os.path.islink(os.path.join(root, d)):
                        try:
                            os.chmod(os.path.join(root, d), 0o700)
                        except OSError:
                            pass


def _events(data: bytes, nonce: str) -> list[dict[str, Any]]:
    prefix, events = nonce.encode(), []
    for line in bytes(data).split(b"\n"):
        if line.startswith(prefix):
            try:
                event = json.loads(line[len(prefix):])
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def _interpret(out: SandboxResult, events: list[dict[str, Any]], total: int, timed_out: bool, timeout: float) -> None:
    ready = next((e for e in events if e.get("ev") == "ready"), None)
    main_pid = ready.get("pid") if ready else None
    events = [e for e in events if e.get("pid") == main_pid]  # lines from forked children are ignored
    results: dict[int, bool] = {}
    errors: dict[int, str] = {}
    memory, load, done, setup_error = False, None, False, None
    for e in events:
        kind = e.get("ev")
        if kind == "test" and isinstance(e.get("i"), int) and 0 <= e["i"] < total and e["i"] not in results:
            results[e["i"]] = e.get("ok") is True
            if not results[e["i"]]:
                errors[e["i"]] = str(e.get("error"))
            memory |= e.get("memory") is True
        elif kind == "load":
            load = e
        elif kind == "setup_error":
            setup_error = setup_error or str(e.get("error"))
            memory |= e.get("memory") is True
        elif kind == "blocked":
            out.blocked.append(str(e.get("what")))
        elif kind == "done":
            done = True
    out.per_test = [results.get(i, False) for i in range(total)]
    out.passed = sum(out.per_test)
    first = min(errors) if errors else None
    out.error = f"test {first}: {errors[first]}" if first is not None else setup_error
    if ready is None:
        out.status = "sandbox_error"
        out.reason = "the sandbox did not start in time" if timed_out else f"the sandbox did not start (exit {out.returncode}): {out.stderr.strip()[-300:]}"
        return
    if load and not load.get("ok"):
        out.error = str(load.get("error"))
        memory |= load.get("kind") == "memory"
        if load.get("kind") == "syntax":
            out.status, out.reason = "syntax_error", out.error
            return
    if timed_out:
        out.status, out.reason = "timeout", f"timed out after {timeout:g} s ({len(results)} of {total} tests finished)"
    elif memory:
        out.status, out.reason = "memory", f"out of memory: {out.error}"
    elif not done:
        rc = out.returncode
        how = f"killed by {signal.Signals(-rc).name}" if rc is not None and rc < 0 and -rc in signal.valid_signals() else f"exit code {rc}"
        out.status, out.reason = "crash", f"the program ended before reporting every test ({how})"
        out.error = out.error or out.reason
    elif load and not load.get("ok"):
        out.status, out.reason = "error", f"the code raised at top level: {out.error}"
    else:
        out.status = "ok"
