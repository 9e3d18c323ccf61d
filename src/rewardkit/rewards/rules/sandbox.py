"""The sandbox that runs untrusted Python for the code reward (:mod:`.code`).

Isolation is layered, and each layer is used only where it works on this machine (probed once per
process; :func:`sandbox_info` says what was chosen and why the rest fell back):

* bubblewrap where installed (root or not): every namespace, an empty read-only root with only the
  system's program dirs and the interpreter, a private ``/tmp``, no nested user namespaces; without
  it, as root, ``unshare`` namespaces and private tmpfs over the world-writable dirs. Tiers that cannot
  hide the invoking user's files are refused unless the operator opts in (:data:`ISOLATING`);
* a fresh unprivileged uid per run (root only), so ``RLIMIT_NPROC`` (which root ignores) caps the
  sandbox's processes and threads; for other users the cap is their current count plus :data:`NPROC`;
* a seccomp filter in every tier (:func:`seccomp_program`), and rlimits (CPU, address space, file
  size, open files, core dumps, processes) set by the trusted bootstrap before any candidate code;
* the tests run in a harness process the candidate cannot reach (:mod:`.sandbox_boot`): values
  cross between them as plain data and are compared there, so verdicts cannot be forged from inside;
* an audit hook (PEP 578) that reports writes outside the work dir, sockets, process creation and
  ``ctypes`` as clear errors; it is a tripwire, not a boundary (the layers above are);
* ``python -I -S -B``, an empty environment, a wall-clock deadline, teardown of the whole process
  tree, and output read through bounded buffers.

What a sample can still take: CPU up to its timeout, and memory up to (processes x ``memory_mb``)
plus the 64 MB ``/tmp`` (there is no cgroup limit); the kernel is shared.
"""
from __future__ import annotations

import functools
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
NPROC = 16  # processes + threads of the sandbox uid (the harness and zygote use about 5): bounds memory at NPROC x memory_mb
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
    test_timeouts: int = 0  # tests that ran past test_timeout
    stopped_early: bool = False  # early_stop ended the run at a failing test
    uid: int | None = None  # the sandbox uid (None: same uid as this process)
    seccomp: bool = False  # the seccomp filter was in force
    pid: int | None = None  # pid of the session leader (its session id)
    tier: str = ""


# --------------------------------------------------------------------------- the trusted bootstrap and the seccomp filter

_BOOT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_boot.py")
_BOOT: str | None = None


def _boot_source() -> str:
    """The program run inside the sandbox (:mod:`.sandbox_boot`), passed to ``python -c``: the
    sandbox sees none of this package's files."""
    global _BOOT
    if _BOOT is None:
        with open(_BOOT_FILE, encoding="utf-8") as fh:
            _BOOT = fh.read()
    return _BOOT


# Syscalls refused with EPERM in every tier: namespaces, mounts, tracing other processes, kernel
# keyrings, BPF, io_uring, module and kexec loading, and the like. ``clone`` is refused only with a
# namespace flag; ``clone3`` answers ENOSYS so that libc falls back to ``clone``, whose flags the
# filter can read. A foreign ABI (i386 on x86_64) ends the process; x32 syscalls fail with EPERM.
_DENIED = ("mount umount2 pivot_root chroot unshare setns ptrace process_vm_readv process_vm_writev bpf keyctl add_key "
           "request_key perf_event_open userfaultfd kexec_load kexec_file_load init_module finit_module delete_module "
           "open_by_handle_at name_to_handle_at fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr "
           "io_uring_setup io_uring_enter io_uring_register swapon swapoff reboot acct quotactl syslog kcmp pidfd_getfd "
           "vhangup personality settimeofday clock_settime adjtimex").split()
_SYSCALLS = {  # machine -> (audit arch, {name: number}) for the syscalls above plus clone / clone3
    "x86_64": (0xC000003E, dict(zip(
        _DENIED + ["clone", "clone3"],
        [165, 166, 155, 161, 272, 308, 101, 310, 311, 321, 250, 248, 249, 298, 323, 246, 320, 175, 313, 176, 304, 303,
         430, 431, 432, 433, 429, 428, 442, 425, 426, 427, 167, 168, 169, 163, 179, 103, 312, 438, 153, 135, 164, 227, 159,
         56, 435]))),
    "aarch64": (0xC00000B7, dict(zip(
        _DENIED + ["clone", "clone3"],
        [40, 39, 41, 51, 97, 268, 117, 270, 271, 280, 219, 217, 218, 241, 282, 104, 294, 105, 273, 106, 265, 264,
         430, 431, 432, 433, 429, 428, 442, 425, 426, 427, 224, 225, 142, 89, 60, 116, 272, 438, 58, 92, 170, 112, 171,
         220, 435]))),
}
_CLONE_NEW = 0x7E020080  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME


@functools.lru_cache(maxsize=None)
def seccomp_program(machine: str | None = None) -> bytes | None:
    """The classic-BPF seccomp filter for this machine (``None`` where the syscall table is not known)."""
    import platform
    import struct
    machine = machine or platform.machine()
    if machine not in _SYSCALLS:
        return None
    arch, numbers = _SYSCALLS[machine]
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    code: list[tuple[int, Any, Any, int]] = [(ld, None, None, 4), (jeq, None, "kill", arch), (ld, None, None, 0)]
    if machine == "x86_64":
        code.append((jge, "eperm", None, 0x40000000))
    code += [(jeq, "clone", None, numbers["clone"]), (jeq, "enosys", None, numbers["clone3"])]
    code += [(jeq, "eperm", None, numbers[name]) for name in _DENIED]
    code += [(ret, None, None, allow), ("clone", 0, 0, 0), (ld, None, None, 16), (jset, "eperm", None, _CLONE_NEW),
             (ret, None, None, allow), ("eperm", 0, 0, 0), (ret, None, None, eperm), ("enosys", 0, 0, 0),
             (ret, None, None, enosys), ("kill", 0, 0, 0), (ret, None, None, kill)]
    labels, program = {}, []
    for op in code:
        if isinstance(op[0], str):
            labels[op[0]] = len(program)
        else:
            program.append(op)
    out = bytearray()
    for i, (op, jt, jf, k) in enumerate(program):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else 0
        jf = labels[jf] - i - 1 if isinstance(jf, str) else 0
        out += struct.pack("<HBBI", op, jt, jf, k)
    return bytes(out)


_PROBE = """
import json, os, socket, sys
try:
    ifaces = sorted(name for _, name in socket.if_nameindex())
except OSError:
    ifaces = None
exe = os.path.realpath(sys.executable or "")
home = %r
print(json.dumps({"uid": os.getuid(), "groups": os.getgroups(), "pids": sum(p.isdigit() for p in os.listdir("/proc")),
                  "ifaces": ifaces, "version": list(sys.version_info[:2]), "home": sorted(os.listdir(home)) if home and os.access(home, os.R_OK) else None,
                  "own_stdlib": exe.startswith(sys.base_prefix.rstrip("/") + "/")}))
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

#: Tiers that isolate the candidate from the host's files, network and processes. Any other tier
#: runs only when the operator opts in with ``REWARDKIT_ALLOW_WEAK_SANDBOX=1``.
ISOLATING = ("bwrap", "root+mountns")
BWRAP_UID = 65534  # the id the candidate has inside bubblewrap's user namespace


# --------------------------------------------------------------------------- tiers and probing


@dataclass(frozen=True)
class _Tier:
    name: str
    uid: bool = False  # runs as a fresh unprivileged uid (root only)
    netns: bool = False
    pidns: bool = False
    private_tmp: bool = False  # private /tmp etc.
    private_fs: bool = False  # only the interpreter's files are visible, read-only (no $HOME, no /etc)
    packages: bool = False  # a chosen interpreter with its installed packages (bwrap only, as the invoking user)

    def command(self, python: list[str], uid: int | None) -> tuple[list[str], dict[str, Any]]:
        unshare = shutil.which("unshare") or "unshare"
        if self.name == "bwrap":
            drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--nnp", "--"] if uid is not None else []
            return [*drop, *_bwrap_args(python[0], self.packages), *python[1:]], {}
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


def _bwrap_args(python: str, packages: bool = False) -> list[str]:
    """bubblewrap: every namespace, an empty read-only root with only the system's program dirs and
    the interpreter's prefix mounted read-only (site-packages hidden unless ``packages``: then a
    virtual environment's own folder is mounted too and its packages import), a private /tmp, no
    further user namespaces, killed with its parent. The harness is the PID namespace's init
    (``--as-pid-1``), so bubblewrap exits only once every process in the sandbox is gone."""
    real = os.path.realpath(python)
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1", "--die-with-parent", "--new-session",
            "--uid", str(BWRAP_UID), "--gid", str(BWRAP_UID), "--hostname", "sandbox",
            "--proc", "/proc", "--dev", "/dev", "--size", str(TMPFS_MB << 20), "--tmpfs", "/tmp"]  # before the binds: one may lie under /tmp
    args += ["--remount-ro", "/dev"]  # device nodes still work; no files can be created in /dev (e.g. /dev/shm)
    for d in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    prefix = os.path.dirname(os.path.dirname(real))
    if not (prefix + "/").startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    venv = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    if packages and os.path.exists(os.path.join(venv, "pyvenv.cfg")) and venv != prefix:
        args += ["--ro-bind", venv, venv]
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if not packages:
        for site in (f"{prefix}/lib/{version}/site-packages", f"{prefix}/local/lib/{version}/dist-packages", f"{prefix}/lib/python3/dist-packages"):
            if os.path.isdir(site):
                args += ["--tmpfs", site, "--remount-ro", site]
    args += ["--remount-ro", "/", "--"]
    return args + [python if packages else real]


def _packages_tier() -> _Tier:
    """bubblewrap with a chosen interpreter's packages; as root, still a fresh uid per run (root is
    exempt from RLIMIT_NPROC), so that interpreter must be readable by an unprivileged user."""
    return _Tier("bwrap", uid=os.geteuid() == 0, netns=True, pidns=True, private_tmp=True, private_fs=True, packages=True)


def _mount_parents(home: str, tier: _Tier, python: str) -> set[str]:
    """Names in ``home`` that exist in the sandbox only as the path to a mounted folder (e.g.
    ``.pyenv`` for an interpreter under it): they hold nothing but that folder."""
    names, args = set(), _bwrap_args(python, tier.packages)
    for i, arg in enumerate(args[:-1]):
        if arg == "--ro-bind" and args[i + 2].startswith(home.rstrip("/") + "/"):
            names.add(args[i + 2][len(home.rstrip("/")) + 1:].split("/")[0])
    return names


def _tiers() -> list[_Tier]:
    has_unshare = shutil.which("unshare") is not None
    bwrap = [_Tier("bwrap", uid=os.geteuid() == 0, netns=True, pidns=True, private_tmp=True, private_fs=True)] if shutil.which("bwrap") else []
    if os.geteuid() == 0:
        tiers = [_Tier("root+mountns", True, True, True, True), _Tier("root+ns", True, True, True)] if has_unshare else []
        tiers = bwrap + tiers + [_Tier("root+uid", uid=True), _Tier("none")]
    else:
        tiers = bwrap + ([_Tier("userns", netns=True, pidns=True)] if has_unshare else []) + [_Tier("none")]
    forced = os.environ.get("REWARDKIT_SANDBOX_TIER")
    if forced:
        tiers = [t for t in tiers if t.name == forced]
        if not tiers:
            raise RuntimeError(f"REWARDKIT_SANDBOX_TIER={forced!r} is not a tier on this machine")
    return tiers


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
_CHOSEN: dict[str, dict[str, Any]] = {}  # an operator's interpreter -> its probed sandbox


def _reset_after_fork() -> None:  # a pool worker forked while another thread probed must not inherit a held lock
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def sandbox_info(python: str | None = None) -> dict[str, Any]:
    """The isolation chosen on this machine: tier, interpreter, which layers are active, whether it
    isolates (else it runs only with ``REWARDKIT_ALLOW_WEAK_SANDBOX=1``), and notes on the layers
    that fell back (probed once per process by running a probe program through each tier).

    ``python``: run candidates with this interpreter and its installed packages (``"venv"``: this
    process's own, e.g. the project's virtual environment) instead of the bare standard library.
    That needs bubblewrap, run as the invoking user (the interpreter must be readable by it)."""
    global _SANDBOX
    with _LOCK:
        if python is not None:
            path = sys.executable if python == "venv" else python
            if path not in _CHOSEN:
                _CHOSEN[path] = _probe(path)
            return _CHOSEN[path]
        if _SANDBOX is None:
            _SANDBOX = _probe()
        return _SANDBOX


def _probe(chosen: str | None = None) -> dict[str, Any]:
    notes: list[str] = []
    home = os.path.expanduser("~")
    home = home if home not in ("", "/") else None
    program = seccomp_program()
    if program is None:
        notes.append("no seccomp filter: the syscall table of this architecture is not known")
    tiers = _tiers()
    if chosen is not None:
        if not os.access(chosen, os.X_OK):
            raise RuntimeError(f"the sandbox interpreter {chosen} is not an executable file")
        tiers = [_packages_tier()] if any(t.name == "bwrap" for t in tiers) else []
        if not tiers:
            raise RuntimeError(f"running candidates with {chosen} and its packages needs bubblewrap; {WEAK_HINT.split(' or set')[0]}")
    for tier in tiers:
        for python in [chosen] if chosen else _interpreters() if tier.uid else [sys.executable]:
            res = _execute(tier, python, _PROBE % home, "list", [], 0, 10.0, 256, audit=False, max_output=MAX_OUTPUT)
            problem = None
            try:
                seen = json.loads(res.stdout.strip().splitlines()[-1]) if res.status == "ok" else None
            except (ValueError, IndexError):
                seen = None
            if seen is None:
                problem = f"{res.status}: {res.reason or ''} {res.stderr.strip()[-200:]}".strip()
                if chosen and tier.uid:
                    problem += f" (as root the sandbox runs as a fresh unprivileged uid: {chosen} and its environment must be readable by any user)"
            elif seen["version"] != list(sys.version_info[:2]) and chosen is None:
                problem = f"Python {seen['version']} is not this Python"
            elif not seen["own_stdlib"]:
                problem = "the interpreter cannot read its own standard library as the sandbox uid"
            elif tier.name == "bwrap" and seen["uid"] != BWRAP_UID:
                problem = f"uid inside bubblewrap is {seen['uid']}, not {BWRAP_UID}"
            elif tier.uid and tier.name != "bwrap" and (seen["uid"] != res.uid or seen["groups"]):
                problem = f"uid/groups not dropped ({seen['uid']}, {seen['groups']})"
            elif tier.netns and seen["ifaces"] not in (["lo"], []):
                problem = f"network namespace shows interfaces {seen['ifaces']}"
            elif tier.pidns and seen["pids"] > 8:
                problem = f"PID namespace not in effect ({seen['pids']} processes visible)"
            elif tier.private_fs and seen["home"] is not None and set(seen["home"]) - _mount_parents(home, tier, python):
                problem = f"the home directory {home} is visible"
            elif program is not None and not res.seccomp:
                problem = "the seccomp filter could not be installed"
            if problem is None:
                features = {"uid": tier.uid, "netns": tier.netns, "pidns": tier.pidns, "private_tmp": tier.private_tmp,
                            "private_fs": tier.private_fs, "nproc": True, "rlimits": True, "seccomp": res.seccomp,
                            "audit_hook": True, "separate_harness": True}
                features["packages"] = tier.packages
                return {"tier": tier.name, "python": python, "features": features, "isolating": tier.name in ISOLATING, "notes": notes,
                        "packages": tier.packages}
            notes.append(f"{tier.name} with {python}: {problem}")
    raise RuntimeError("no way to run the sandbox: " + "; ".join(notes))


# --------------------------------------------------------------------------- the parent side

WEAK_HINT = ("install bubblewrap (Debian/Ubuntu: apt install bubblewrap; Fedora: dnf install bubblewrap) for an isolating "
             "sandbox, or set REWARDKIT_ALLOW_WEAK_SANDBOX=1 to accept this tier")


def run_program(code: str, mode: str, payload: Any, total: int, timeout: float, memory_mb: int, *, audit: bool, max_output: int, debug: bool = False,
                test_timeout: float | None = None, early_stop: bool = False, python: str | None = None) -> SandboxResult:
    """Run ``code`` against the tests (``mode``/``payload``/``total`` from ``prepare_tests``) within
    ``timeout`` s in all; ``test_timeout`` also limits each test (a test over it fails, the solution
    restarts for the next); ``early_stop`` ends the run at the first failing test."""
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if memory_mb < 64:
        raise ValueError(f"memory_mb must be at least 64 (the interpreter needs it), got {memory_mb}")
    try:
        info = sandbox_info(python)
    except RuntimeError as err:
        return SandboxResult("sandbox_error", total=total, per_test=[False] * total, reason=str(err))
    if not info["isolating"] and os.environ.get("REWARDKIT_ALLOW_WEAK_SANDBOX") != "1":
        reason = (f"refusing to run untrusted code: the best sandbox tier here is {info['tier']!r}, which does not isolate "
                  f"the host's files ({'; '.join(info['notes']) or 'no isolating tier available'}); {WEAK_HINT}")
        return SandboxResult("sandbox_error", total=total, per_test=[False] * total, reason=reason, tier=info["tier"])
    tier = next(t for t in _tiers() if t.name == info["tier"])
    if info.get("packages"):
        tier = _packages_tier()
    return _execute(tier, info["python"], code, mode, payload, total, timeout, memory_mb, audit=audit, max_output=max_output, debug=debug,
                    test_timeout=test_timeout, early_stop=early_stop)


class _Capped:
    """Keeps the first ``cap`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int):
        self.cap, self.data, self.size = cap, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]


def _tasks_of(uid: int) -> int:
    """Processes + threads of a uid (what RLIMIT_NPROC counts), read from /proc."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as fh:
                    fields = dict(line.split(":", 1) for line in fh if line.startswith(("Uid:", "Threads:")))
                if int(fields["Uid"].split()[0]) == uid:
                    count += int(fields["Threads"])
            except (OSError, KeyError, ValueError):
                continue
    return count


def _execute(tier: _Tier, python: str, code: str, mode: str, payload: Any, total: int, timeout: float, memory_mb: int, *, audit: bool, max_output: int, debug: bool = False,
             test_timeout: float | None = None, early_stop: bool = False) -> SandboxResult:
    uid = secrets.SystemRandom().randrange(*UID_RANGE) if tier.uid else None
    host_dir = None if tier.private_tmp else tempfile.mkdtemp(prefix="rewardkit-code-")
    workdir = "/tmp/rewardkit-sandbox" if tier.private_tmp else host_dir
    if host_dir is not None and uid is not None:
        os.chown(host_dir, uid, uid)
    # RLIMIT_NPROC counts every task of the real uid: a fresh uid gets NPROC; the invoking user's
    # own uid gets what it runs now plus NPROC.
    nproc = NPROC if uid is not None else _tasks_of(os.getuid()) + NPROC
    limits = [
        ("RLIMIT_CPU", math.ceil(timeout) + 1, math.ceil(timeout) + 2),
        ("RLIMIT_AS", memory_mb << 20, memory_mb << 20),
        ("RLIMIT_FSIZE", FILE_MB << 20, FILE_MB << 20),
        ("RLIMIT_NOFILE", NOFILE, NOFILE),
        ("RLIMIT_CORE", 0, 0),
    ] + ([("RLIMIT_NPROC", nproc, nproc)] if tier.name != "none" else [])
    program = seccomp_program()
    nonce = secrets.token_hex(8)
    first = json.dumps({"code": code, "mode": mode, "audit": audit, "debug": debug, "limits": limits, "workdir": workdir,
                        "make_workdir": tier.private_tmp, "hard_timeout": timeout + 5, "packages": tier.packages, "seccomp": program.hex() if program else None}).encode()
    second = json.dumps({"nonce": nonce, "tests": payload, "test_timeout": test_timeout, "early_stop": early_stop}).encode()
    job_bytes = b"%016d" % len(first) + first + second + b"\n"
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir, "MALLOC_ARENA_MAX": "2"}
    result_r, result_w = os.pipe()
    flags = ["-I", "-B"] if tier.packages else ["-I", "-S", "-B"]  # -S hides site-packages
    argv, extra = tier.command([python, *flags, "-c", _boot_source(), str(result_w)], uid)
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
        end = time.monotonic() + 5.0  # killed processes only need the kernel's teardown; a fork bomb's takes a moment
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
    out.seccomp = bool(ready and ready.get("seccomp") is True)
    events = [e for e in events if e.get("pid") == main_pid]  # lines from forked children are ignored
    results: dict[int, bool] = {}
    errors: dict[int, str] = {}
    memory, load, done, setup_error, gone = False, None, False, None, False
    for e in events:
        kind = e.get("ev")
        if kind == "test" and isinstance(e.get("i"), int) and 0 <= e["i"] < total and e["i"] not in results:
            results[e["i"]] = e.get("ok") is True
            out.test_timeouts += e.get("timeout") is True
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
        elif kind == "candidate_exit":
            gone = True
        elif kind == "early_stop":
            out.stopped_early = True
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
    elif gone:
        out.status, out.reason = "crash", f"the program ended before every test ran ({len(results)} of {total} tests finished)"
        out.error = out.error or out.reason
    elif not done:
        rc = out.returncode
        how = f"killed by {signal.Signals(-rc).name}" if rc is not None and rc < 0 and -rc in signal.valid_signals() else f"exit code {rc}"
        out.status, out.reason = "crash", f"the program ended before reporting every test ({how})"
        out.error = out.error or out.reason
    elif load and not load.get("ok"):
        out.status, out.reason = "error", f"the code raised at top level: {out.error}"
    else:
        out.status = "ok"
