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
import sys


def _read_exact(fd, n, read=os.read, len=len, min=min):
    chunks, left = [], n
    while left:
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


def _recv(fd, loads, cap, int=int, ValueError=ValueError):
    size = int.from_bytes(_read_exact(fd, 8), "little")
    if size > cap:
        raise ValueError("message too large")
    return loads(_read_exact(fd, size))


# --------------------------------------------------------------------------- plain values across the pipe

MAX_DEPTH = 64


def _encoder(refs):
    """Candidate side: a value as tagged JSON. Builtin scalars, containers (and their subclasses,
    e.g. ``Counter``, ``defaultdict``, named tuples), ``Fraction`` and ``Decimal`` become plain values;
    anything else an opaque handle ``["r", id, type name]``. Whatever the candidate makes of this
    function, the harness only ever receives data."""

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
            return ["i", int.__repr__(int.__index__(v))]
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
        if kind == ("fractions", "Fraction"):
            return ["q", int.__repr__(int.__index__(v.numerator)), int.__repr__(int.__index__(v.denominator))]
        if kind == ("decimal", "Decimal"):
            return ["D", str.__str__(str(v))]
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


def _decoder(make_ref):
    """Harness side: tagged JSON back to plain values; a handle becomes ``make_ref(id, type name)``."""

    def dec(x, depth=0):
        if depth > MAX_DEPTH + 1 or type(x) is not list or not x or type(x[0]) is not str:
            raise ValueError("malformed value")
        tag = x[0]
        if tag == "n":
            return None
        if tag == "b":
            return x[1] is True
        if tag == "i":
            return int(x[1])
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
        raise ValueError("malformed value")

    return dec


# --------------------------------------------------------------------------- the audit hook (a tripwire)


def _guard(root, on_block, allow_fork=None):
    """The audit hook. It calls nothing the sandboxed code wrote: arguments of any type but exact
    ``str`` / ``bytes`` / ``int`` are refused, so no method of a subclass runs inside it. It is a
    convenience that reports clear errors; the OS layers hold without it."""
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
        elif event == "os.fork" and allow_fork is not None and allow_fork[0]:
            return
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
        sys.addaudithook(_guard(root, lambda what: send(["blocked", what])))
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
            elif op == "contains":
                reply = ["ok", enc(dec(msg[2]) in target)]
            elif op == "bool":
                reply = ["ok", enc(bool(target))]
            else:
                reply = ["x", "TypeError", "unknown request"]
        except BaseException as err:
            restore()
            cls = type(err)
            reply = ["x", cls.__name__ if getattr(builtins, cls.__name__, None) is cls else "", str(err)[:300] if debug else ""]
        try:
            send(reply)
        except BaseException:
            _flush_and_exit()


# --------------------------------------------------------------------------- the harness (this process)


class _Gone(BaseException):
    """The candidate process ended (or broke the protocol): stop running tests."""


def _fork_helper(job, keep, target):
    """Fork the process that will run candidate code, before the harness holds any test: it gets a
    request and a reply pipe, stdin from /dev/null and none of the harness's other descriptors."""
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            nul = os.open(os.devnull, os.O_RDWR)
            os.dup2(nul, 0)
            os.close(nul)
            for fd in (*keep, req_w, resp_r):
                os.close(fd)
            _prctl(1, 9)  # PR_SET_PDEATHSIG SIGKILL: dies with the harness
            target(job, req_r, resp_w)
        finally:
            os._exit(0)
    os.close(req_r)
    os.close(resp_w)
    return pid, req_w, resp_r


def _zygote(job, req_r, resp_w):
    """stdio mode: forks one fresh candidate per request, feeds it the case's input and returns its
    output and load status. It never sees an expected output."""
    import json
    import select
    import threading
    dumps, loads = json.dumps, json.loads
    while True:
        try:
            msg = _recv(req_r, loads, 1 << 30)
        except BaseException:
            os._exit(0)
        data = msg[1].encode("utf-8", "surrogateescape")
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        st_r, st_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(in_r, 0)
                os.dup2(out_w, 1)
                for fd in (in_r, in_w, out_r, out_w, st_r, req_r, resp_w):
                    os.close(fd)
                _candidate(job, -1, st_w, True)
            finally:
                os._exit(0)
        for fd in (in_r, out_w, st_w):
            os.close(fd)

        def feed(fd=in_w, view=memoryview(data)):
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                pass
            finally:
                os.close(fd)

        threading.Thread(target=feed, daemon=True).start()
        chunks, size, cap = [], 0, 16 << 20
        while True:
            select.select([out_r], [], [])
            chunk = os.read(out_r, 1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size <= cap:
                chunks.append(chunk)
        os.close(out_r)
        statuses = []
        while True:
            try:
                statuses.append(_recv(st_r, loads, 1 << 20))
            except BaseException:
                break
        os.close(st_r)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        load = next((m for m in statuses if type(m) is list and m and m[0] == "load"), ["load", False, "crash", None])
        blocked = [m[1] for m in statuses if type(m) is list and len(m) > 1 and m[0] == "blocked"]
        output = b"".join(chunks).decode("utf-8", "replace") if size <= cap else None
        try:
            _send(resp_w, ["ran", load, output, blocked], dumps)
        except BaseException:
            os._exit(0)


def _harness(job, out_fd, life):
    import builtins
    import json
    import select
    import threading
    import time
    dumps, loads, debug = json.dumps, json.loads, job["debug"]
    root = os.path.realpath(job["workdir"])
    mode = job["mode"]
    stdio = mode == "stdio"
    pid, req_w, resp_r = _fork_helper(job, (out_fd, life), _zygote if stdio else _candidate_served)
    hard_timeout, audit, failed, seccomp_on = job["hard_timeout"], job["audit"], job["failed_limits"], job["seccomp_on"]
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: the candidate cannot open /proc/<harness>/mem or /fd
    rest = []
    while not rest or not rest[-1].endswith(b"\n"):
        chunk = os.read(0, 1 << 16)
        if not chunk:
            os._exit(3)
        rest.append(chunk)
    tests_job = loads(b"".join(rest))
    nonce = tests_job["nonce"].encode()
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

    def finish():
        _flush()
        emit({"ev": "done"})
        try:  # let the candidate flush its output: it exits at EOF on its request pipe
            os.close(req_w)
            for _ in range(100):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.005)
        except BaseException:
            pass
        os._exit(0)

    lock = threading.Lock()

    def exchange(msg):
        """One request and its reply; operations the candidate's hook blocked are reported."""
        with lock:
            try:
                _send(req_w, msg, dumps)
                while True:
                    reply = _recv(resp_r, loads, 64 << 20)
                    if type(reply) is list and len(reply) > 1 and reply[0] == "blocked":
                        emit({"ev": "blocked", "what": str(reply[1])[:200]})
                        continue
                    if type(reply) is not list or not reply:
                        raise ValueError
                    return reply
            except BaseException:
                raise _Gone() from None

    if stdio:
        _stdio_tests(tests_job["tests"], exchange, emit)
        finish()
    try:
        load = exchange(["load"])
    except _Gone:
        emit({"ev": "candidate_exit"})
        finish()
    emit({"ev": "load", "ok": load[1] is True, "kind": load[2], "error": load[3] if type(load[3]) is str else None})
    if load[1] is not True:
        finish()

    class SolutionError(Exception):
        """An exception the solution raised that is not a builtin exception type."""

    def rpc(*msg):
        reply = exchange(list(msg))
        if reply[0] == "x":
            name = reply[1] if type(reply[1]) is str else ""
            text = reply[2] if type(reply[2]) is str else ""
            cls = getattr(builtins, name, None) if name else None
            if isinstance(cls, type) and issubclass(cls, Exception):
                raise cls(text) if text else cls()
            err = SolutionError(text)
            err._remote_type = name or None
            raise err
        if reply[0] != "ok" or len(reply) < 2:
            raise _Gone()
        return reply

    class Remote:
        """An object that lives in the candidate process."""
        __slots__ = ("_h", "_t")

        def __init__(self, handle, type_name):
            object.__setattr__(self, "_h", handle)
            object.__setattr__(self, "_t", type_name)

        def __getattr__(self, name):
            return value_of(rpc("getattr", self._h, name))

        def __call__(self, *args, **kwargs):
            reply = rpc("call", self._h, [enc_arg(a) for a in args], [[k, enc_arg(v)] for k, v in kwargs.items()])
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
            return value_of(rpc("getitem", self._h, enc_arg(key)))

        def __setitem__(self, key, value):
            rpc("setitem", self._h, enc_arg(key), enc_arg(value))

        def __len__(self):
            return value_of(rpc("len", self._h))

        def __iter__(self):
            it = value_of(rpc("iter", self._h))
            while True:
                try:
                    yield value_of(rpc("next", it._h))
                except StopIteration:
                    return

        def __contains__(self, item):
            return value_of(rpc("contains", self._h, enc_arg(item))) is True

        def __bool__(self):
            return value_of(rpc("bool", self._h)) is True

        def __eq__(self, other):  # identity only: the candidate's own __eq__ is never trusted
            return type(other) is Remote and other._h == self._h

        def __hash__(self):
            return hash(self._h)

        def __repr__(self):
            return "<solution object of type %s>" % self._t

    dec = _decoder(Remote)
    plain = _encoder([])

    def enc_arg(value):
        if type(value) is Remote:
            return ["r", value._h, value._t]
        out = plain(value)
        if '["r", ' in dumps(out):
            raise TypeError("a %s cannot be passed to the solution (only plain values and its own objects)" % type(value).__name__)
        return out

    def value_of(reply):
        try:
            return dec(reply[1])
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError):
            raise _Gone() from None

    names = {}
    for item in load[3] if type(load[3]) is list else ():
        try:
            if type(item[0]) is str and item[0].isidentifier():
                names[item[0]] = dec(item[1])
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError):
            continue
    _function_tests(mode, tests_job["tests"], names, emit, debug)
    finish()


def _candidate_served(job, req_r, resp_w):
    """Function mode: wait for the harness's first request, then load and serve."""
    import json
    try:
        _recv(req_r, json.loads, 1 << 20)
    except BaseException:
        os._exit(0)
    _candidate(job, req_r, resp_w, False)


def _function_tests(mode, payload, names, emit, debug):
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
        try:
            exec(test, shared)
            ok, error, memory = True, None, False
        except _Gone:
            emit({"ev": "candidate_exit"})
            return
        except BaseException as err:
            ok, error, memory = False, _fmt(err, debug), isinstance(err, MemoryError) or getattr(err, "_remote_type", None) == "MemoryError"
        if is_test:
            emit({"ev": "test", "i": index, "ok": ok, "error": error, "memory": memory})
            index += 1
        elif not ok:
            emit({"ev": "setup_error", "error": error, "memory": memory})


def _stdio_tests(cases, exchange, emit):
    """One fresh candidate per case (forked by the zygote); its stdout is compared here."""
    for i, case in enumerate(cases):
        try:
            reply = exchange(["run", case["input"]])
        except _Gone:
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
            error = load[3] if type(load[3]) is str else "the program ended abnormally"
            emit({"ev": "test", "i": i, "ok": False, "error": error, "memory": load[2] == "memory"})
            continue
        ok = type(output) is str and _same_output(output, case["output"])
        emit({"ev": "test", "i": i, "ok": ok, "error": None if ok else ("output too long" if output is None else "wrong answer"), "memory": False})


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
