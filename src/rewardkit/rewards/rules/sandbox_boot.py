"""The trusted program that runs inside the sandbox (passed to ``python -I -S -B -c``; never imported).

It reads the job in two parts from stdin: the first (limits, the seccomp filter, the candidate's
code) before it forks the **candidate** process, the second (the tests and the result nonce) after,
so the candidate never holds the tests in its memory. The **harness** (this process) then runs the
tests and reports each verdict on a pipe only it holds; it is not dumpable, so the candidate (same
uid) cannot read its memory or its file descriptors through ``/proc``.

Function tests (``list`` / ``script``) run in the harness against proxies: every name the solution
defines is reached over a pipe, arguments and results cross as plain values (numbers, strings,
containers), anything else as an opaque handle. A result can therefore never be an object whose
``__eq__`` lies, and nothing the candidate patches (builtins, ``json``, the harness's functions)
exists in the process that compares. ``stdio`` tests fork one candidate per test, feed its stdin and
compare its stdout here. Errors travel as exception type names; messages only with ``debug``.
"""
import os
import select
import sys
import time


def _read_exact(fd, n, deadline=None, read=os.read, len=len, min=min, wait_for=select.select, now=time.monotonic):
    """``n`` bytes from ``fd``; ``EOFError`` at its end, ``TimeoutError`` past ``deadline``
    (a ``time.monotonic()`` instant; ``None``: waits)."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - now()
            if wait <= 0 or not wait_for([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _send(fd, obj, dumps, write=os.write, len=len, InterruptedError=InterruptedError):
    data = dumps(obj).encode()
    data = len(data).to_bytes(8, "little") + data
    while data:
        try:
            data = data[write(fd, data):]
        except InterruptedError:
            continue


def _recv(fd, loads, cap, deadline=None, int=int, ValueError=ValueError):
    size = int.from_bytes(_read_exact(fd, 8, deadline), "little")
    if size > cap:
        raise ValueError("message too large")
    return loads(_read_exact(fd, size, deadline))


# --------------------------------------------------------------------------- plain values across the pipe

MAX_DEPTH = 64


def _encoder(refs, data_only=False):
    """Candidate side: a value as tagged JSON. Builtin scalars, containers (and their subclasses,
    e.g. ``Counter``, ``defaultdict``, named tuples), ``Fraction`` and ``Decimal`` become plain values;
    anything else an opaque handle ``["r", id, type name]`` (with ``data_only``, modules and
    exception classes too). Whatever the candidate makes of this function, the harness only ever
    receives data."""

    def ref(v):
        refs.append(v)
        return ["r", len(refs) - 1, type(v).__name__[:60]]

    def enc(v, depth=0):
        if depth > MAX_DEPTH:
            return ref(v)
        if v is None:
            return ["n"]
        if v is True or v is False:
            return ["b", v]
        if isinstance(v, int):
            return ["i", format(int.__index__(v), "x")]  # hex: no digit limit
        if isinstance(v, float):
            return ["f", float.__repr__(v)]
        if type(v) is complex:
            return ["c", v.real, v.imag]
        if isinstance(v, str):
            return ["s", str.__str__(v)]
        if isinstance(v, bytes):
            return ["y", bytes.hex(v)]
        if isinstance(v, bytearray):
            return ["Y", bytearray.hex(v)]
        kind = (type(v).__module__, type(v).__name__)
        if type(v) is range:
            return ["R", format(v.start, "x"), format(v.stop, "x"), format(v.step, "x")]
        if kind == ("collections", "deque"):
            return ["Q", [enc(x, depth + 1) for x in list(v)]]
        if kind == ("collections", "Counter"):
            return ["C", [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in dict.items(v)]]
        if kind in (("datetime", "date"), ("datetime", "datetime"), ("datetime", "time"), ("datetime", "timedelta")):
            return ["T", kind[1], [v.days, v.seconds, v.microseconds] if kind[1] == "timedelta" else v.isoformat()]
        if kind == ("builtins", "module") and not data_only:
            return ["m", str.__str__(str(v.__name__))]
        if isinstance(v, type) and issubclass(v, BaseException) and not data_only:
            return ["x", str.__str__(type.__getattribute__(v, "__name__"))[:60]]
        if kind == ("fractions", "Fraction"):
            return ["q", int.__repr__(int.__index__(v.numerator)), int.__repr__(int.__index__(v.denominator))]
        if kind == ("decimal", "Decimal"):
            return ["D", str.__str__(str(v))]
        if kind[0] == "numpy" and hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # a NumPy scalar: its Python value
            return enc(v.item(), depth + 1)
        if isinstance(v, list):
            return ["l", [enc(x, depth + 1) for x in list.__iter__(v)]]
        if isinstance(v, tuple):
            return ["t", [enc(x, depth + 1) for x in tuple.__iter__(v)]]
        if isinstance(v, dict):
            return ["d", [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in dict.items(v)]]
        if isinstance(v, (set, frozenset)):
            return ["e" if isinstance(v, set) else "z", [enc(x, depth + 1) for x in (set.__iter__(v) if isinstance(v, set) else frozenset.__iter__(v))]]
        return ref(v)

    return enc


def _decoder(make_ref, make_module=None, make_error=None):
    """Harness side: tagged JSON back to plain values; a handle becomes ``make_ref(id, type name)``,
    a module ``make_module(name)``, an exception class ``make_error(name)``."""

    def dec(x, depth=0):
        if depth > MAX_DEPTH + 1 or type(x) is not list or not x or type(x[0]) is not str:
            raise ValueError("malformed value")
        tag = x[0]
        if tag == "n":
            return None
        if tag == "b":
            return x[1] is True
        if tag == "i":
            return int(x[1], 16)
        if tag == "f":
            return float(x[1])
        if tag == "c":
            return complex(float(x[1]), float(x[2]))
        if tag == "s":
            if type(x[1]) is not str:
                raise ValueError("malformed value")
            return x[1]
        if tag in ("y", "Y"):
            raw = bytes.fromhex(x[1])
            return raw if tag == "y" else bytearray(raw)
        if tag == "q":
            import fractions
            return fractions.Fraction(int(x[1]), int(x[2]))
        if tag == "D":
            import decimal
            return decimal.Decimal(str(x[1]))
        if tag in ("l", "t", "e", "z"):
            items = [dec(i, depth + 1) for i in x[1]]
            return {"l": list, "t": tuple, "e": set, "z": frozenset}[tag](items)
        if tag == "d":
            return {dec(k, depth + 1): dec(v, depth + 1) for k, v in x[1]}
        if tag == "r":
            return make_ref(int(x[1]), str(x[2]))
        if tag == "R":
            return range(int(x[1], 16), int(x[2], 16), int(x[3], 16))
        if tag == "Q":
            import collections
            return collections.deque(dec(i, depth + 1) for i in x[1])
        if tag == "C":
            import collections
            return collections.Counter({dec(k, depth + 1): dec(v, depth + 1) for k, v in x[1]})
        if tag == "T":
            import datetime
            if x[1] == "timedelta":
                return datetime.timedelta(days=int(x[2][0]), seconds=int(x[2][1]), microseconds=int(x[2][2]))
            return getattr(datetime, {"date": "date", "datetime": "datetime", "time": "time"}[x[1]]).fromisoformat(str(x[2]))
        if tag == "m":
            return make_module(str(x[1]))
        if tag == "x":
            return make_error(str(x[1]))
        raise ValueError("malformed value")

    return dec


# --------------------------------------------------------------------------- the audit hook (a tripwire)


def _guard(root, on_block, native=False):
    """The audit hook. It calls nothing the sandboxed code wrote: arguments of any type but exact
    ``str`` / ``bytes`` / ``int`` are refused, so no method of a subclass runs inside it. It is a
    convenience that reports clear errors; the OS layers hold without it. ``native`` (an
    interpreter with its installed packages, e.g. numpy) lets ctypes load libraries."""
    import stat
    lstat, readlink, getcwd, getpid = os.lstat, os.readlink, os.getcwd, os.getpid
    islnk, type_, str_, bytes_, int_, len_ = stat.S_ISLNK, type, str, bytes, int, len
    OSError_, BaseException_, PermissionError_ = OSError, BaseException, PermissionError
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    deny_events = frozenset({
        "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
        "pty.spawn", "os.killpg", "resource.setrlimit", "resource.prlimit", "ctypes.dlopen", "ctypes.dlsym",
        "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function", "gc.get_objects", "gc.get_referrers",
        "gc.get_referents", "os.setns", "os.unshare", "sys.remote_exec", "sys._current_frames",
        "sys.setprofile", "sys.settrace", "cpython._PySys_ClearAuditHooks",
    })
    deny_imports = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi", "_testinternalcapi"})
    if native:
        deny_events = frozenset(e for e in deny_events if not e.startswith("ctypes."))
        deny_imports = deny_imports - {"ctypes", "_ctypes"}
    frame_attrs = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
    path_events = {  # event -> ((path index, dir_fd index or None, follow the last symlink), ...)
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
            kind = type_(path)
            if kind is int_:
                full = readlink("/proc/self/fd/%d" % path)
            elif kind is str_ or kind is bytes_:
                path = path.decode("utf-8", "surrogateescape") if kind is bytes_ else path
                if path.startswith("/"):
                    full = path
                elif type_(dir_fd) is int_ and dir_fd >= 0:
                    full = readlink("/proc/self/fd/%d" % dir_fd) + "/" + path
                else:
                    full = getcwd() + "/" + path
            else:
                return False  # a path-like object would run its own code here
            full = resolve(full, follow)
        except BaseException_:
            return False
        return full == root or full.startswith(root + "/") or full == "/dev/null"

    def deny(what):
        if what not in seen:
            seen.add(what)
            on_block(what)
        raise PermissionError_("sandbox: " + what + " is not allowed")

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if type_(path) is int_:
                return
            writing = (type_(mode) is str_ and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (type_(flags) is int_ and flags & write_flags) or (mode is not None and type_(mode) is not str_) or (flags is not None and type_(flags) is not int_)
            if writing and not inside(path, None, True):
                deny("open for writing outside the work dir")
        elif event in path_events:
            for i, fd_i, follow in path_events[event]:
                if i < len_(args) and not inside(args[i], args[fd_i] if fd_i is not None and fd_i < len_(args) else None, follow):
                    deny(event + " outside the work dir")
        elif event in deny_events or event.startswith("socket."):
            deny(event)
        elif event == "import":
            name = args[0]
            if type_(name) is not str_ or name in deny_imports or name.partition(".")[0] in deny_imports:
                deny("import " + (name if type_(name) is str_ else "?"))
        elif event == "object.__getattr__":
            if type_(args[1]) is not str_ or args[1] in frame_attrs:
                deny("frame introspection")
        elif event == "os.kill":
            if type_(args[0]) is not int_ or args[0] != getpid():
                deny(event)

    return hook


# --------------------------------------------------------------------------- setup shared by both processes


def _limits(job):
    import resource
    failed = []
    for name, soft, hard in job["limits"]:
        res = getattr(resource, name, None)
        try:
            cur = resource.getrlimit(res)[1]
            if cur != resource.RLIM_INFINITY:
                soft, hard = min(soft, cur), min(hard, cur)
            resource.setrlimit(res, (soft, hard))
        except (OSError, ValueError, TypeError):
            failed.append(name)
    return failed


_PRCTL = []  # libc's prctl, bound once by _prctl_and_seccomp (ctypes is then dropped from sys.modules)


def _prctl_and_seccomp(program_hex):
    """No new privileges, then the seccomp filter (a classic BPF program built by the parent).
    Returns whether the filter is in force. ctypes leaves ``sys.modules`` again before any
    untrusted code runs (the audit hook refuses to import it anew and to call foreign functions)."""
    try:
        import ctypes
    except ImportError:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
        _PRCTL.append(prctl)
        prctl(38, 1, None, 0, 0)  # PR_SET_NO_NEW_PRIVS
        if not program_hex:
            return False

        class Prog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        raw = bytes.fromhex(program_hex)
        buf = ctypes.create_string_buffer(raw, len(raw))
        prog = Prog(len(raw) // 8, ctypes.addressof(buf))
        return prctl(22, 2, ctypes.byref(prog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    finally:
        for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
            del sys.modules[name]


def _prctl(option, value):
    """A prctl call for the harness / candidate split (PR_SET_DUMPABLE, PR_SET_PDEATHSIG)."""
    if _PRCTL:
        _PRCTL[0](option, value, None, 0, 0)


def _fmt(err, debug):
    """An exception as a short string: its builtin type name; the message only in debug mode (a
    message can carry file contents or the tests themselves)."""
    import builtins
    try:
        cls = type(err)
        name = cls.__name__ if getattr(builtins, cls.__name__, None) is cls else "exception raised by the solution"
        if getattr(err, "_remote_type", None):
            name = err._remote_type
        if not debug:
            return name
        msg = str(err)
        return (name + ": " + msg if msg else name)[:300]
    except BaseException:
        return "unprintable exception"


# --------------------------------------------------------------------------- the candidate process


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _flush_and_exit():
    _flush()
    os._exit(0)


def _candidate(job, req_r, resp_w, as_main):
    """Runs the solution. Function mode: serves the harness's requests until the pipe closes.
    stdio mode: runs the program as ``__main__`` and exits."""
    import builtins
    import json
    import _posixsubprocess
    dumps, loads, debug = json.dumps, json.loads, job["debug"]
    refs = []
    enc = _encoder(refs)
    dec = _decoder(lambda i, _t: refs[i])
    root = os.path.realpath(job["workdir"])

    def send(obj):
        _send(resp_w, obj, dumps)

    if job["audit"]:
        def blocked_spawn(*args, **kwargs):
            raise PermissionError("sandbox: process creation is not allowed")
        _posixsubprocess.fork_exec = blocked_spawn  # it raises no audit event of its own
        sys.addaudithook(_guard(root, lambda what: send(["blocked", what]), native=job.get("packages") is True))
    if not hasattr(builtins, "exit"):  # python -S leaves out site's exit() and quit(), which programs call
        def exit(code=None):
            raise SystemExit(code)
        builtins.exit = builtins.quit = exit
    ns = {"__name__": "__main__" if as_main else "solution", "__builtins__": builtins}
    try:
        code = compile(job["code"], "<solution>", "exec")  # parsed here, never in the trusted parent
    except BaseException as err:
        send(["load", False, "memory" if isinstance(err, MemoryError) else "syntax", _fmt(err, debug)])
        _flush_and_exit()
    job = None
    saved = dict(builtins.__dict__)

    def restore():  # the solution may patch builtins; the serving code below needs them intact
        if builtins.__dict__ != saved:
            builtins.__dict__.clear()
            builtins.__dict__.update(saved)

    try:
        exec(code, ns)
    except SystemExit as err:
        if not as_main or err.code not in (None, 0):
            send(["load", False, "exception", _fmt(err, debug)])
            _flush_and_exit()
    except BaseException as err:
        send(["load", False, "memory" if isinstance(err, MemoryError) else "exception", _fmt(err, debug)])
        _flush_and_exit()
    if as_main:
        _flush()
        send(["load", True, None, None])
        os._exit(0)
    restore()
    names = []
    for name, value in list(ns.items()):
        if type(name) is str and not name.startswith("__"):
            try:
                names.append([name, enc(value)])
            except BaseException:
                pass
    send(["load", True, None, names])
    while True:
        try:
            msg = _recv(req_r, loads, 1 << 30)
        except BaseException:
            _flush_and_exit()
        restore()
        try:
            op, target = msg[0], refs[msg[1]]
            if op == "call":
                args = [dec(a) for a in msg[2]]
                kwargs = {k: dec(v) for k, v in msg[3]}
                value = target(*args, **kwargs)
                restore()
                after = [enc(a) if type(a) in (list, dict, set, bytearray) else None for a in args]
                reply = ["ok", enc(value), [a if a != before else None for a, before in zip(after, msg[2])]]
            elif op == "getattr":
                reply = ["ok", enc(getattr(target, msg[2]))]
            elif op == "getitem":
                reply = ["ok", enc(target[dec(msg[2])])]
            elif op == "setitem":
                target[dec(msg[2])] = dec(msg[3])
                reply = ["ok", ["n"]]
            elif op == "len":
                reply = ["ok", enc(len(target))]
            elif op == "iter":
                reply = ["ok", enc(iter(target))]
            elif op == "next":
                reply = ["ok", enc(next(target))]
            elif op == "bool":
                reply = ["ok", enc(bool(target))]
            else:
                reply = ["x", "TypeError", "unknown request"]
        except BaseException as err:
            restore()
            cls = type(err)
            builtin = getattr(builtins, cls.__name__, None) is cls
            reply = ["x", str(cls.__name__)[:60], str(err)[:300] if debug else "", builtin]
        try:
            send(reply)
        except BaseException:
            _flush_and_exit()


# --------------------------------------------------------------------------- the harness (this process)


class _Gone(BaseException):
    """The candidate process ended (or broke the protocol): stop running tests."""


def _start_zygote(job, keep):
    """Fork the zygote before the harness holds any test: every process that runs candidate code is
    forked by it, so none inherits a test or an expected output. Returns the harness's end of the
    socket pair (requests and replies, and the descriptors of new candidates)."""
    import socket
    harness_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            nul = os.open(os.devnull, os.O_RDWR)
            os.dup2(nul, 0)
            os.close(nul)
            for fd in keep:
                os.close(fd)
            harness_end.close()
            _prctl(1, 9)  # PR_SET_PDEATHSIG SIGKILL: dies with the harness
            _zygote(job, zygote_end)
        finally:
            os._exit(0)
    zygote_end.close()
    return harness_end


def _zygote(job, sock):
    """Serves the harness: ``spawn`` forks a function-mode candidate and passes its pipes back,
    ``kill`` ends one, ``run`` forks a program for one stdin/stdout case (fed its input, read within
    the case's time limit) and returns its output and load status. It never sees an expected output."""
    import json
    import signal
    import socket
    import threading
    dumps, loads, fd = json.dumps, json.loads, sock.fileno()
    _prctl(4, 0)  # not dumpable: a candidate cannot open /proc/<zygote>/mem or /fd

    def reap():
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass

    while True:
        try:
            msg = _recv(fd, loads, 1 << 30)
        except BaseException:
            os._exit(0)
        reap()
        if msg[0] == "kill":
            try:
                os.kill(int(msg[1]), signal.SIGKILL)
                os.waitpid(int(msg[1]), 0)
            except (OSError, ChildProcessError, ValueError):
                pass
            _send(fd, ["killed"], dumps)
            continue
        if msg[0] == "spawn":
            req_r, req_w = os.pipe()
            resp_r, resp_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    sock.close()
                    os.close(req_w)
                    os.close(resp_r)
                    _prctl(1, 9)
                    _candidate_served(job, req_r, resp_w)
                finally:
                    os._exit(0)
            os.close(req_r)
            os.close(resp_w)
            socket.send_fds(sock, [b"F"], [req_w, resp_r])
            os.close(req_w)
            os.close(resp_r)
            _send(fd, ["spawned", pid], dumps)
            continue
        data = msg[1].encode("utf-8", "surrogateescape")
        limit = msg[2] if len(msg) > 2 and type(msg[2]) in (int, float) else None
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        st_r, st_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.dup2(in_r, 0)
                os.dup2(out_w, 1)
                for f in (in_r, in_w, out_r, out_w, st_r):
                    os.close(f)
                _prctl(1, 9)
                _candidate(job, -1, st_w, True)
            finally:
                os._exit(0)
        for f in (in_r, out_w, st_w):
            os.close(f)

        def feed(f=in_w, view=memoryview(data)):
            try:
                while view:
                    view = view[os.write(f, view):]
            except OSError:
                pass
            finally:
                os.close(f)

        threading.Thread(target=feed, daemon=True).start()
        chunks, size, cap, timed_out = [], 0, 16 << 20, False
        end = None if limit is None else time.monotonic() + limit
        while True:
            wait = None if end is None else end - time.monotonic()
            if wait is not None and (wait <= 0 or not select.select([out_r], [], [], wait)[0]):
                timed_out = True
                break
            chunk = os.read(out_r, 1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size <= cap:
                chunks.append(chunk)
        if timed_out:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os.close(out_r)
        statuses = []
        while not timed_out:
            try:
                statuses.append(_recv(st_r, loads, 1 << 20))
            except BaseException:
                break
        os.close(st_r)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        load = next((m for m in statuses if type(m) is list and m and m[0] == "load"), ["load", False, "timeout" if timed_out else "crash", None])
        blocked = [m[1] for m in statuses if type(m) is list and len(m) > 1 and m[0] == "blocked"]
        output = b"".join(chunks).decode("utf-8", "replace") if size <= cap else None
        try:
            _send(fd, ["ran", load, output, blocked], dumps)
        except BaseException:
            os._exit(0)


class _TestTimeout(BaseException):
    """A test ran past its own time limit (``test_timeout``)."""


def _harness(job, out_fd, life):
    import builtins
    import json
    import socket
    import threading
    dumps, loads, debug = json.dumps, json.loads, job["debug"]
    root = os.path.realpath(job["workdir"])
    mode = job["mode"]
    zsock = _start_zygote(job, (out_fd, life))
    zfd = zsock.fileno()
    hard_timeout, audit, failed, seccomp_on = job["hard_timeout"], job["audit"], job["failed_limits"], job["seccomp_on"]
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: no candidate can open /proc/<harness>/mem or /fd
    rest = []
    while not rest or not rest[-1].endswith(b"\n"):
        chunk = os.read(0, 1 << 16)
        if not chunk:
            os._exit(3)
        rest.append(chunk)
    tests_job = loads(b"".join(rest))
    nonce = tests_job["nonce"].encode()
    test_timeout, early_stop = tests_job.get("test_timeout"), tests_job.get("early_stop") is True
    job = None

    def emit(obj):
        obj["pid"] = os.getpid()
        data = nonce + dumps(obj).encode() + b"\n"
        while data:
            try:
                data = data[os.write(out_fd, data):]
            except InterruptedError:
                continue
            except OSError:
                return

    def watchdog():
        try:
            select.select([life], [], [], hard_timeout)
        except BaseException:
            pass
        os._exit(124)

    threading.Thread(target=watchdog, daemon=True).start()
    emit({"ev": "ready", "failed_limits": failed, "seccomp": seccomp_on})
    if audit:
        sys.addaudithook(_guard(root, lambda what: emit({"ev": "blocked", "what": what})))
    lock = threading.Lock()
    state = {"cand": None, "gen": 0, "deadline": None}  # the live candidate: [pid, request fd, reply fd]

    def zygote(msg, deadline=None):
        try:
            _send(zfd, msg, dumps)
            return _recv(zfd, loads, 64 << 20, deadline)
        except TimeoutError:
            raise
        except BaseException:
            raise _Gone() from None

    def spawn():
        try:
            _send(zfd, ["spawn"], dumps)
            _, fds, _, _ = socket.recv_fds(zsock, 1, 2)
            reply = _recv(zfd, loads, 1 << 20)
        except BaseException:
            raise _Gone() from None
        if len(fds) != 2 or type(reply) is not list or reply[0] != "spawned":
            raise _Gone()
        state["cand"], state["gen"] = [reply[1], fds[0], fds[1]], state["gen"] + 1

    def retire(flush):
        """End the live candidate: at EOF on its request pipe it flushes and exits (``flush``), or
        the zygote kills it."""
        cand, state["cand"] = state["cand"], None
        if cand is None:
            return
        os.close(cand[1])
        if flush:
            select.select([cand[2]], [], [], 0.5)
        os.close(cand[2])
        if not flush:
            try:
                zygote(["kill", cand[0]], time.monotonic() + 5)
            except BaseException:
                pass

    def finish():
        _flush()
        emit({"ev": "done"})
        try:
            retire(True)
        except BaseException:
            pass
        os._exit(0)

    def exchange(msg):
        """One request to the live candidate and its reply, within the test's time limit (then
        ``_TestTimeout``); operations the candidate's hook blocked are reported."""
        with lock:
            cand = state["cand"]
            if cand is None:
                raise _Gone()
            try:
                _send(cand[1], msg, dumps)
                while True:
                    reply = _recv(cand[2], loads, 64 << 20, state["deadline"])
                    if type(reply) is list and len(reply) > 1 and reply[0] == "blocked":
                        emit({"ev": "blocked", "what": str(reply[1])[:200]})
                        continue
                    if type(reply) is not list or not reply:
                        raise ValueError
                    return reply
            except TimeoutError:
                raise _TestTimeout() from None
            except BaseException:
                raise _Gone() from None

    if mode == "stdio":
        _stdio_tests(tests_job["tests"], zygote, emit, test_timeout, early_stop)
        finish()

    class SolutionError(Exception):
        """An exception the solution raised that is not a builtin exception type."""

    errors = {}  # the solution's own exception classes, by name: stand-ins the tests can catch

    def make_error(name):
        if name not in errors:
            errors[name] = type(name, (SolutionError,), {"__module__": "solution"})
        return errors[name]

    def make_module(name):
        """A module the solution imported: the tests get the harness's own copy (never a proxy)."""
        import importlib
        try:
            return importlib.import_module(name)
        except BaseException:
            import types
            return types.ModuleType(name)  # not importable here (e.g. not in the standard library): an empty stand-in

    # Exceptions that steer the harness's own control flow are never raised as themselves: a
    # StopIteration from a solution's function would end map()/filter() in a test early.
    control = (StopIteration, StopAsyncIteration, GeneratorExit)

    def rpc(gen, *msg):
        if gen != state["gen"]:
            raise RuntimeError("this object belonged to a run of the solution that was stopped after a timeout")
        reply = exchange(list(msg))
        if reply[0] == "x":
            name = reply[1] if type(reply[1]) is str else ""
            text = reply[2] if type(reply[2]) is str else ""
            builtin = len(reply) > 3 and reply[3] is True
            cls = getattr(builtins, name, None) if builtin else None
            if builtin and name == "StopIteration" and msg[0] == "next":
                raise StopIteration
            if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, control):
                raise cls(text) if text else cls()
            err = (errors[name] if not builtin and name in errors else SolutionError)(text)
            err._remote_type = name if builtin else None  # a builtin name only: the solution's own names stay out of reports
            raise err
        if reply[0] != "ok" or len(reply) < 2:
            raise _Gone()
        return reply

    class Remote:
        """An object that lives in the candidate process."""
        __slots__ = ("_h", "_t", "_g")

        def __init__(self, handle, type_name):
            object.__setattr__(self, "_h", handle)
            object.__setattr__(self, "_t", type_name)
            object.__setattr__(self, "_g", state["gen"])

        def __getattr__(self, name):
            return value_of(rpc(self._g, "getattr", self._h, name))

        def __call__(self, *args, **kwargs):
            reply = rpc(self._g, "call", self._h, [enc_arg(a) for a in args], [[k, enc_arg(v)] for k, v in kwargs.items()])
            changed = reply[2] if len(reply) > 2 and type(reply[2]) is list else ()
            for arg, new in zip(args, changed):
                if new is not None:  # the solution mutated a list/dict/set argument in place
                    new = value_of([None, new])
                    if type(arg) is type(new) and type(arg) in (list, bytearray):
                        arg[:] = new
                    elif type(arg) is type(new) and type(arg) in (dict, set):
                        arg.clear()
                        arg.update(new)
            return value_of(reply)

        def __getitem__(self, key):
            return value_of(rpc(self._g, "getitem", self._h, enc_arg(key)))

        def __setitem__(self, key, value):
            rpc(self._g, "setitem", self._h, enc_arg(key), enc_arg(value))

        def __len__(self):
            return value_of(rpc(self._g, "len", self._h))

        def __iter__(self):
            it = value_of(rpc(self._g, "iter", self._h))
            while True:
                try:
                    yield value_of(rpc(self._g, "next", it._h))
                except StopIteration:
                    return

        def __next__(self):
            return value_of(rpc(self._g, "next", self._h))

        def __contains__(self, item):  # compared here, item by item: the solution's __contains__ is never asked
            return any(x is item or x == item for x in self)

        def __bool__(self):
            return value_of(rpc(self._g, "bool", self._h)) is True

        def __eq__(self, other):  # identity only: the candidate's own __eq__ is never trusted
            return type(other) is Remote and other._h == self._h and other._g == self._g

        def __hash__(self):
            return hash((self._g, self._h))

        def __repr__(self):
            return "<solution object of type %s>" % self._t

    dec = _decoder(Remote, make_module, make_error)
    unpassable = []  # what an argument held that is not data (the encoder's handles)
    plain = _encoder(unpassable, data_only=True)

    def enc_arg(value):
        if type(value) is Remote:
            if value._g != state["gen"]:
                raise RuntimeError("this object belonged to a run of the solution that was stopped after a timeout")
            return ["r", value._h, value._t]
        out = plain(value)
        if unpassable:
            unpassable.clear()
            raise TypeError("a %s cannot be passed to the solution (only plain values and its own objects)" % type(value).__name__)
        return out

    def value_of(reply):
        try:
            return dec(reply[1])
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError):
            raise _Gone() from None

    def start():
        """A fresh candidate, loaded: (load reply, the names it defines)."""
        spawn()
        load = exchange(["load"])
        names = {}
        for item in load[3] if load[1] is True and type(load[3]) is list else ():
            try:
                # a name the solution gives to a builtin (its own `set`, `sorted` ...) never shadows the builtin in the tests
                if type(item[0]) is str and item[0].isidentifier() and not hasattr(builtins, item[0]):
                    names[item[0]] = dec(item[1])
            except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError):
                continue
        return load, names

    def restart():
        retire(False)
        state["deadline"] = None if test_timeout is None else time.monotonic() + test_timeout
        load, names = start()
        state["deadline"] = None
        return names if load[1] is True else None

    try:
        load, names = start()
    except (_Gone, _TestTimeout):
        emit({"ev": "candidate_exit"})
        finish()
    emit({"ev": "load", "ok": load[1] is True, "kind": load[2], "error": load[3] if type(load[3]) is str else None})
    if load[1] is True:
        _function_tests(mode, tests_job["tests"], names, emit, debug, state, test_timeout, early_stop, restart)
    finish()


def _candidate_served(job, req_r, resp_w):
    """Function mode: wait for the harness's first request, then load and serve."""
    import json
    try:
        _recv(req_r, json.loads, 1 << 20)
    except BaseException:
        os._exit(0)
    _candidate(job, req_r, resp_w, False)


def _function_tests(mode, payload, names, emit, debug, state, test_timeout, early_stop, restart):
    """Each test runs here, in the harness, against the candidate's proxies. A test over its own
    time limit fails (``timeout``) and the solution is restarted for the next one."""
    import ast
    import builtins
    try:
        if mode == "script":
            tree = ast.parse(payload, "<tests>")
            if any(isinstance(n, ast.Assert) for n in tree.body):
                tests = [(isinstance(n, ast.Assert), compile(ast.Module([n], []), "<tests>", "exec")) for n in tree.body]
            else:
                tests = [(True, compile(tree, "<tests>", "exec"))]
        else:
            tests = [(True, compile(src, "<test %d>" % i, "exec")) for i, src in enumerate(payload)]
    except BaseException as err:
        emit({"ev": "harness_error", "error": _fmt(err, debug)})
        os._exit(4)
    shared, index = None, 0
    for is_test, test in tests:
        if mode == "list" or shared is None:
            shared = dict(names)
            shared["__builtins__"] = dict(builtins.__dict__)
            shared["__name__"] = "tests"
        state["deadline"] = None if test_timeout is None else time.monotonic() + test_timeout
        timed_out = False
        try:
            exec(test, shared)
            ok, error, memory = True, None, False
        except _Gone:
            emit({"ev": "candidate_exit"})
            return
        except _TestTimeout:
            ok, error, memory, timed_out = False, "timeout", False, True
        except BaseException as err:
            ok, error, memory = False, _fmt(err, debug), isinstance(err, MemoryError) or getattr(err, "_remote_type", None) == "MemoryError"
        state["deadline"] = None
        if is_test:
            emit({"ev": "test", "i": index, "ok": ok, "error": error, "memory": memory, "timeout": timed_out})
            index += 1
        elif not ok:
            emit({"ev": "setup_error", "error": error, "memory": memory})
        if not ok and early_stop:
            emit({"ev": "early_stop"})
            return
        if timed_out:
            try:
                names = restart()
            except (_Gone, _TestTimeout):
                names = None
            if names is None:
                emit({"ev": "candidate_exit"})
                return
            if mode == "script":  # objects made by the stopped run are dead; the rest of the setup stays
                shared.update(names)


def _stdio_tests(cases, zygote, emit, test_timeout, early_stop):
    """One fresh program per case (forked by the zygote, killed at the case's time limit); its
    stdout is compared here."""
    for i, case in enumerate(cases):
        try:
            reply = zygote(["run", case["input"], test_timeout])
        except (_Gone, TimeoutError):
            emit({"ev": "candidate_exit"})
            return
        load, output = reply[1], reply[2]
        for what in reply[3] if len(reply) > 3 and type(reply[3]) is list else ():
            emit({"ev": "blocked", "what": str(what)[:200]})
        if type(load) is not list or len(load) < 4:
            load = ["load", False, "crash", None]
        if i == 0 and load[2] == "syntax":
            emit({"ev": "load", "ok": False, "kind": "syntax", "error": load[3]})
            return
        if i == 0:
            emit({"ev": "load", "ok": True})
        if load[1] is not True:
            error = "timeout" if load[2] == "timeout" else load[3] if type(load[3]) is str else "the program ended abnormally"
            emit({"ev": "test", "i": i, "ok": False, "error": error, "memory": load[2] == "memory", "timeout": load[2] == "timeout"})
        else:
            ok = type(output) is str and _same_output(output, case["output"])
            emit({"ev": "test", "i": i, "ok": ok, "error": None if ok else ("output too long" if output is None else "wrong answer"), "memory": False})
            if ok:
                continue
        if early_stop:
            emit({"ev": "early_stop"})
            return


def _same_output(got, want):
    """Token-wise equality; a token of the expected output with a decimal point or exponent also
    matches a number within 1e-6 (absolute or relative), as judges of float answers do."""
    a, b = got.split(), want.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        if not any(c in y for c in ".eE"):
            return False
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if not (abs(fx - fy) <= 1e-6 or abs(fx - fy) <= 1e-6 * abs(fy)):
            return False
    return True


def _main(out_fd):
    import json
    job = json.loads(_read_exact(0, int(_read_exact(0, 16))))
    life = os.dup(0)  # stays open while the parent lives; EOF = parent gone
    if job["make_workdir"]:
        os.mkdir(job["workdir"], 0o700)
    os.chdir(job["workdir"])
    failed = _limits(job)
    seccomp_on = _prctl_and_seccomp(job.get("seccomp"))
    if job.get("seccomp") and not seccomp_on:
        os._exit(5)  # the filter was asked for and could not be installed: refuse to run
    if not _PRCTL:
        os._exit(5)  # without prctl the harness could not be made undumpable: refuse to run
    job["failed_limits"], job["seccomp_on"] = failed, seccomp_on
    _harness(job, out_fd, life)


_main(int(sys.argv[1]))
