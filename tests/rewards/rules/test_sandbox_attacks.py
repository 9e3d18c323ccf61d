"""rule:code attacked as an adversary would, with the audit hook switched off where the OS layers
must hold on their own, and as an unprivileged user (``setpriv --reuid nobody``), not only as root.

Each attack class comes from the red team's report: reading and writing the invoking user's files,
process caps, namespace and mount escapes, forging verdicts, subverting the audit hook, parsing
huge completions in the trusted process, leaking file contents through error messages, and limits
set by the data."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from rewardkit.rewards.rules import load_rule
from rewardkit.rewards.rules import sandbox as sandbox_mod
from rewardkit.rewards.rules.code import check_code, run_sandboxed, sandbox_info

SRC = Path(sandbox_mod.__file__).parent

# Attacks run with the audit hook off: each prints one JSON line of what it achieved.
HOST_ATTACK = r'''
import json, os
home = HOME
out = {}
def attempt(name, fn):
    try:
        out[name] = fn()
    except BaseException as err:
        out[name] = "refused: " + type(err).__name__
attempt("read_token", lambda: open(home + "/.cache/huggingface/token").read())
attempt("append_bashrc", lambda: open(home + "/.bashrc", "a").write("echo pwned\n"))
attempt("rewrite_state", lambda: open(home + "/run/state.json", "w").write("{}"))
attempt("list_home", lambda: os.listdir(home))
attempt("etc_passwd", lambda: open("/etc/passwd").read()[:20])
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    rc = getattr(libc, name)(*args)
    return "ok" if rc == 0 else "errno %d" % ctypes.get_errno()
attempt("unshare_user", lambda: call("unshare", 0x10000000))
attempt("unshare_net", lambda: call("unshare", 0x40000000))
attempt("mount_tmpfs", lambda: call("mount", b"none", b"/tmp", b"tmpfs", 0, None))
attempt("ptrace_parent", lambda: call("ptrace", 16, os.getppid(), None, None))  # PTRACE_ATTACH
attempt("bpf", lambda: call("syscall", 321, 0, None, 0) if os.uname().machine == "x86_64" else "n/a")
attempt("keyctl", lambda: call("syscall", 250, 0, 0, 0) if os.uname().machine == "x86_64" else "n/a")
kids = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        import time
        time.sleep(3)
        os._exit(0)
    kids += 1
out["forks"] = kids
print(json.dumps(out))
'''


def plant(home: Path) -> dict[str, bytes]:
    """The invoking user's secrets and files a candidate must not reach."""
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / "run").mkdir()
    files = {".cache/huggingface/token": b"hf_SECRET_TOKEN\n", ".bashrc": b"# bashrc\n", "run/state.json": b'{"step": 41}'}
    for rel, data in files.items():
        (home / rel).write_bytes(data)
    return files


def check_host_attack(report: dict, home: Path, files: dict[str, bytes]) -> None:
    assert not str(report["read_token"]).startswith("hf_SECRET"), report
    assert str(report["append_bashrc"]).startswith("refused"), report
    assert str(report["rewrite_state"]).startswith("refused"), report
    assert str(report["list_home"]).startswith("refused"), report
    for key in ("unshare_user", "unshare_net", "mount_tmpfs", "ptrace_parent", "bpf", "keyctl"):
        assert report[key] in ("errno 1", "n/a"), (key, report[key])  # EPERM from the seccomp filter
    assert report["forks"] <= sandbox_mod.NPROC, report
    for rel, data in files.items():
        assert (home / rel).read_bytes() == data, rel


# --------------------------------------------------------------------------- as root (this process)


def test_root_host_files_namespaces_and_fork_caps_hold_without_the_audit_hook(tmp_path, monkeypatch):
    home = tmp_path / "home"
    files = plant(home)
    res = run_sandboxed(HOST_ATTACK.replace("HOME", repr(str(home))), timeout=10, audit=False)
    assert res.status == "ok", (res.reason, res.stderr[-500:])
    check_host_attack(json.loads(res.stdout.strip().splitlines()[-1]), home, files)
    assert res.seccomp


# --------------------------------------------------------------------------- as an unprivileged user

DRIVER = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
import sandbox
info = sandbox.sandbox_info()
code = open(sys.argv[2]).read()
res = sandbox.run_program(code, "list", [], 0, 10.0, 256, audit=False, max_output=1 << 16)
print(json.dumps({"info": info, "status": res.status, "reason": res.reason, "stdout": res.stdout, "stderr": res.stderr[-400:]}))
'''


def nobody_python() -> str | None:
    """An interpreter of this Python version that the user nobody can run (not one under /root)."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for cand in (f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if os.path.exists(cand):
            return cand
    return None


@pytest.fixture
def as_nobody(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to switch to the user nobody")
    python = nobody_python()
    if python is None:
        pytest.skip("no interpreter of this Python version outside /root for the user nobody")
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="rk-nobody-"))
    os.chmod(base, 0o755)
    lib = base / "lib"
    lib.mkdir()
    for name in ("sandbox.py", "sandbox_boot.py"):
        shutil.copy(SRC / name, lib / name)
    home = base / "home"
    files = plant(home)
    for root, dirs, names in os.walk(base):
        for n in dirs + names:
            os.chown(os.path.join(root, n), nobody.pw_uid, nobody.pw_gid)
    os.chown(base, nobody.pw_uid, nobody.pw_gid)

    def run(code: str, extra_env: dict[str, str] | None = None) -> dict:
        (base / "attack.py").write_text(code)
        (base / "driver.py").write_text(DRIVER)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **(extra_env or {})}
        proc = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--",
                               python, "-I", str(base / "driver.py"), str(lib), str(base / "attack.py")],
                              capture_output=True, text=True, timeout=120, env=env, cwd=str(base))
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    yield run, home, files
    shutil.rmtree(base, ignore_errors=True)


def test_nobody_gets_bubblewrap_and_the_attacks_fail(as_nobody):
    run, home, files = as_nobody
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed (apt install bubblewrap)")
    out = run(HOST_ATTACK.replace("HOME", repr(str(home))))
    assert out["info"]["tier"] == "bwrap" and out["info"]["isolating"], out["info"]
    assert out["info"]["features"]["seccomp"] and out["info"]["features"]["private_fs"]
    assert out["status"] == "ok", (out["reason"], out["stderr"])
    check_host_attack(json.loads(out["stdout"].strip().splitlines()[-1]), home, files)


def test_nobody_without_bubblewrap_is_refused_unless_the_user_opts_in(as_nobody):
    run, home, files = as_nobody
    # The user-namespace tier cannot hide the user's files: rule:code refuses it and says why.
    out = run("print('ran')", {"REWARDKIT_SANDBOX_TIER": "userns"})
    assert out["info"]["tier"] == "userns" and not out["info"]["isolating"]
    assert out["status"] == "sandbox_error" and "bubblewrap" in out["reason"] and "REWARDKIT_ALLOW_WEAK_SANDBOX" in out["reason"]
    out = run("print('ran')", {"REWARDKIT_SANDBOX_TIER": "userns", "REWARDKIT_ALLOW_WEAK_SANDBOX": "1"})
    assert out["status"] == "ok" and out["stdout"].strip() == "ran"


def test_a_weak_tier_is_refused_as_root_too(monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("root tiers")
    monkeypatch.setattr(sandbox_mod, "_SANDBOX", None)
    monkeypatch.setenv("REWARDKIT_SANDBOX_TIER", "root+uid")
    v = check_code("```python\ndef f():\n    return 1\n```", tests=["assert f() == 1"])
    assert v.score is None and "bubblewrap" in v.reason
    monkeypatch.setenv("REWARDKIT_ALLOW_WEAK_SANDBOX", "1")
    assert check_code("```python\ndef f():\n    return 1\n```", tests=["assert f() == 1"]).score == 1.0
    monkeypatch.setattr(sandbox_mod, "_SANDBOX", None)


# --------------------------------------------------------------------------- forging the verdict


def md(code: str) -> str:
    return f"```python\n{textwrap.dedent(code)}\n```"


FORGERIES = {
    "always_equal": """
        class Anything:
            def __eq__(self, other):
                return True
            __ne__ = lambda self, other: False
        def f(x):
            return Anything()
    """,
    "always_equal_str_subclass": """
        class S(str):
            def __eq__(self, other):
                return True
            __hash__ = str.__hash__
        def f(x):
            return S("nope")
    """,
    "report_through_frames": """
        import sys
        def f(x):
            frame = sys._getframe()
            while frame is not None:
                for space in (frame.f_locals, frame.f_globals):
                    for name in ("emit", "_send", "send"):
                        fn = space.get(name)
                        if callable(fn):
                            for i in range(4):
                                try:
                                    fn({"ev": "test", "i": i, "ok": True, "error": None, "memory": False})
                                except Exception:
                                    pass
                frame = frame.f_back
            return 0
    """,
    "write_every_fd": """
        import os
        for fd in range(3, 256):
            for i in range(4):
                try:
                    os.write(fd, b'{"ev": "test", "i": %d, "ok": true}\\n' % i)
                except OSError:
                    pass
        def f(x):
            return 0
    """,
    "patch_json": """
        import json
        json.dumps = lambda *a, **k: '["ok", ["i", "2"], []]'
        json.loads = lambda *a, **k: ["ok", ["i", "2"], []]
        def f(x):
            return 0
    """,
    "shadow_builtins": """
        import builtins
        builtins.sorted = lambda *a, **k: [2]
        builtins.len = lambda x: 1
        builtins.isinstance = lambda *a: True
        def f(x):
            return [0]
    """,
    "read_the_tests": """
        import os, re
        def scan():
            found = []
            paths = ["/proc/self/fd/0", "/proc/%d/cmdline" % os.getppid(), "/proc/%d/environ" % os.getppid(), "/proc/%d/fd/0" % os.getppid()]
            for p in paths:
                try:
                    found.append(open(p, "rb").read(1 << 20))
                except OSError:
                    pass
            for pid in (os.getpid(), os.getppid()):
                try:
                    maps = open("/proc/%d/maps" % pid).read().splitlines()
                    mem = open("/proc/%d/mem" % pid, "rb")
                except OSError:
                    continue
                for line in maps:
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    if "r" in line.split()[1] and hi - lo < (64 << 20):
                        try:
                            mem.seek(lo)
                            found.append(mem.read(hi - lo))
                        except (OSError, ValueError, OverflowError):
                            pass
            for blob in found:
                m = re.search(rb"SECRET_[0-9]{6}", blob)
                if m:
                    return m.group().decode()
            return None
        ANSWER = scan()
        def f(x):
            return ANSWER
    """,
}


FORGERIES.update({
    "own_builtins_and_patched_modules": """
        import math
        math.isclose = lambda *a, **k: True
        def set(*a):
            return 0
        def sorted(*a):
            return 0
        def f(x):
            return "garbage"
    """,
    "stop_iteration_ends_map": """
        def f(x):
            raise StopIteration
    """,
    "lying_contains": """
        class Bag:
            def __contains__(self, item):
                return True
            def __iter__(self):
                return iter(())
            def __len__(self):
                return 3
        def f(x):
            return Bag()
    """,
})
FORGERY_TESTS = ["assert f(1) == 2", "assert sorted(f(1)) == [2]", "assert len(f(1)) == 3 and 2 in f(1)", "assert f(1) == 'SECRET_424242'",
                 "assert set(f(1)) == set((4, 5))", "import math\nassert math.isclose(f(1), 1.5)", "assert all(x == 2 for x in map(f, [1, 1]))"]


@pytest.mark.parametrize("audit", [True, False], ids=["hook", "no-hook"])
@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_verdict_forgeries_score_zero(name, audit):
    tests = FORGERY_TESTS
    mode, payload, total = "list", tests, len(tests)
    res = sandbox_mod.run_program(textwrap.dedent(FORGERIES[name]), mode, payload, total, 10.0, 512, audit=audit, max_output=4096)
    assert res.passed == 0, (name, res.status, res.per_test, res.error, res.stderr[-300:])


def test_honest_solutions_still_pass_through_the_proxies():
    """What crosses the pipe: plain values, containers, in-place mutation, exceptions by builtin
    type, objects of the solution's own classes, generators, stdlib number types."""
    code = md("""
        from collections import Counter, OrderedDict, namedtuple
        from fractions import Fraction
        Point = namedtuple("Point", "x y")
        LIMIT = 10
        def add(a, b):
            return a + b
        def sort_in_place(xs):
            xs.sort()
        def counts(s):
            return Counter(s)
        def half():
            return Fraction(1, 2)
        def pt():
            return Point(1, 2)
        def gen(n):
            for i in range(n):
                yield i * i
        def check_positive(x):
            if x < 0:
                raise ValueError("negative")
            return x
        import datetime
        import math
        class MyError(Exception):
            pass
        def fail():
            raise MyError("no")
        def span(n):
            return range(n)
        def tally(s):
            return Counter(s)
        def day():
            return datetime.date(2020, 1, 2)
        def root(x):
            return math.sqrt(x)
        class Stack:
            def __init__(self):
                self.items = []
            def push(self, x):
                self.items.append(x)
            def pop(self):
                return self.items.pop()
            def __len__(self):
                return len(self.items)
    """)
    tests = [
        "assert add(2, 3) == 5 and add('a', 'b') == 'ab' and add([1], [2]) == [1, 2]",
        "xs = [3, 1, 2]\nsort_in_place(xs)\nassert xs == [1, 2, 3]",
        "assert counts('aab') == {'a': 2, 'b': 1}",
        "assert half() == 0.5",
        "assert pt() == (1, 2)",
        "assert list(gen(4)) == [0, 1, 4, 9]",
        "try:\n    check_positive(-1)\n    raise AssertionError('no error')\nexcept ValueError:\n    pass",
        "s = Stack()\ns.push(1)\ns.push(2)\nassert s.pop() == 2 and len(s) == 1",
        "assert LIMIT == 10 and isinstance(add(1.5, 1), float) and add(2**70, 1) == 2**70 + 1",
        "assert abs(add(0.1, 0.2) - 0.3) < 1e-9 and add(float('inf'), 1) == float('inf')",
        "assert next(gen(3)) == 0 and add(10**5000, 0) == 10**5000",
        "try:\n    fail()\n    raise AssertionError('no error')\nexcept MyError:\n    pass",
        "assert span(3) == range(3) and tally('aab')['z'] == 0 and tally('aab').most_common(1) == [('a', 2)]",
        "import datetime\nassert day() == datetime.date(2020, 1, 2)",
        "assert math.isclose(root(4), 2.0)",  # the solution's `import math`, as the tests' own math
    ]
    v = check_code(code, tests=tests)
    assert v.info["per_test"] == [True] * len(tests), v.info


# --------------------------------------------------------------------------- the audit hook itself


def test_the_hook_runs_no_code_of_a_str_subclass():
    """A ``str`` subclass whose methods try to disarm the hook from inside it: the hook never calls
    them (only exact str/bytes/int are read), so the write is refused and the trap never fires."""
    code = textwrap.dedent("""
        import sys
        fired = []
        class Trap(str):
            def startswith(self, *a):
                fired.append("startswith")
                frame = sys._getframe(1)
                while frame is not None:
                    if "deny" in frame.f_locals:
                        frame.f_locals["deny"] = lambda what: None
                    frame = frame.f_back
                return True
            def split(self, *a):
                fired.append("split")
                return str.split(self, *a)
            def __fspath__(self):
                fired.append("fspath")
                return str(self)
        try:
            open(Trap("/usr/evil"), "w")
            result = "opened"
        except OSError as err:
            result = type(err).__name__
        print(result, sorted(set(fired)))
    """)
    res = run_sandboxed(code, audit=True)
    assert res.stdout.split(" ", 1)[0] in ("PermissionError",), res.stdout
    assert "open for writing outside the work dir" in res.blocked
    assert "startswith" not in res.stdout and "split" not in res.stdout


# --------------------------------------------------------------------------- parsing and messages


def test_huge_completions_are_not_parsed_in_this_process(monkeypatch):
    import ast

    import rewardkit.rewards.rules.code as code_mod
    calls = []
    real = ast.parse
    monkeypatch.setattr(code_mod.ast, "parse", lambda src, *a, **k: calls.append(len(src)) or real(src, *a, **k))
    start = time.perf_counter()
    v = check_code("x = 1\n" * ((8 << 20) // 6), tests=["assert x == 1"])
    assert v.score is None and "too long" in v.reason and time.perf_counter() - start < 2.0
    program = "x = 1\n" + "y = [1, 2, 3]\n" * 20000  # under the cap: parsed inside the sandbox only
    v = check_code(program, tests=["assert x == 1"])
    assert v.score == 1.0 and v.info["code_from"] == "text"
    assert all(n < 1000 for n in calls), calls  # only the (short) tests were parsed here
    assert check_code("The answer is: use a loop = simple.", tests=["assert x == 1"]).reason == "no code found"


def test_error_messages_do_not_carry_file_contents_or_the_tests():
    leak = md("""
        def f(x):
            raise ValueError(open("/etc/passwd").read() if __import__("os").path.exists("/etc/passwd") else "root:x:0:0:leak")
    """)
    v = check_code(leak, tests=["assert f(1) == 2"])
    assert v.info["error"] == "test 0: ValueError" and "root:" not in json.dumps(v.info)
    top = md("raise RuntimeError(open('/etc/hostname').read() if __import__('os').path.exists('/etc/hostname') else 'host')")
    assert check_code(top, tests=["assert 1"]).info["error"] == "RuntimeError"
    wrong = md("def f(x):\n    return 0")
    v = check_code(wrong, tests=["assert f(1) == 'SECRET_TEST_VALUE', 'expected SECRET_TEST_VALUE'"])
    assert "SECRET" not in json.dumps(v.info) and v.info["error"] == "test 0: AssertionError"
    custom = md("class Leak(Exception):\n    pass\ndef f(x):\n    raise type('root_x_0_0', (Exception,), {})('data')")
    assert check_code(custom, tests=["assert f(1) == 2"]).info["error"] == "test 0: exception raised by the solution"


# --------------------------------------------------------------------------- limits come from the operator


def test_resource_limits_are_never_read_from_data_columns():
    reward = load_rule("code")
    assert "timeout" not in reward.optional and "memory_mb" not in reward.optional
    bomb = md("x = bytearray(1 << 30)\ndef f():\n    return 1")
    start = time.perf_counter()
    out = reward.score(["p", "p"], [bomb, md("import time\ntime.sleep(30)\ndef f():\n    return 1")],
                       tests=[["assert f() == 1"]] * 2, memory_mb=[4096, 4096], timeout=[1e9, 1e9])
    assert out.scores == [0.0, 0.0] and out.extras["status"] == ["memory", "timeout"]
    assert time.perf_counter() - start < 20


def test_operator_maxima_clamp_the_options(monkeypatch):
    monkeypatch.setenv("REWARDKIT_CODE_MAX_TIMEOUT", "1")
    reward = load_rule("code", timeout=100)
    start = time.perf_counter()
    out = reward.score(["p"], [md("import time\ntime.sleep(10)\ndef f():\n    return 1")], tests=[["assert f() == 1"]])
    assert out.extras["status"] == ["timeout"] and time.perf_counter() - start < 5


# --------------------------------------------------------------------------- stdin/stdout cases


def test_stdin_stdout_cases_are_compared_in_the_harness():
    cases = [{"input": "1 2\n", "output": "3\n"}, {"input": "5 7\n", "output": "12"}, {"input": "0.5 0.25\n", "output": "0.75"}]
    good = md("a, b = map(float, input().split())\ns = a + b\nprint(int(s) if s == int(s) else s)")
    assert check_code(good, tests=cases).score == 1.0
    assert check_code(md("print(3)"), tests=cases).info["per_test"] == [True, False, False]
    apps = {"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]}
    assert check_code(good, tests=apps).score == 1.0
    # The candidate never sees the expected output: printing what it finds in its own memory fails.
    snoop = md("""
        import os, re
        found = b""
        try:
            for line in open("/proc/self/maps").read().splitlines():
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                if "r" in line.split()[1] and hi - lo < (64 << 20):
                    with open("/proc/self/mem", "rb") as mem:
                        mem.seek(lo)
                        blob = mem.read(hi - lo)
                    m = re.search(rb"SECRET_[0-9]{6}", blob)
                    if m:
                        found = m.group()
                        break
        except Exception:
            pass
        print(found.decode() or "nothing")
    """)
    v = check_code(snoop, tests=[{"input": "", "output": "SECRET_123456"}])
    assert v.score == 0.0
    assert check_code(md("def broken(:\n    pass"), tests=cases).info["status"] == "syntax_error"
    assert check_code(md("raise SystemExit(3)"), tests=cases).score == 0.0


# --------------------------------------------------------------------------- competitive-programming form


def test_one_hanging_case_of_twelve_scores_eleven_with_per_test_timeouts():
    cases = [{"input": f"{i}\n", "output": f"{2 * i}\n"} for i in range(12)]
    program = md("""
        n = int(input())
        if n == 5:
            while True:
                pass
        print(2 * n)
    """)
    start = time.perf_counter()
    v = check_code(program, tests=cases, test_timeout=1.0)
    assert v.score == pytest.approx(11 / 12) and v.info["test_timeouts"] == 1 and v.info["per_test"][5] is False
    assert time.perf_counter() - start < 8
    # without per-test limits the whole-sample timeout forfeits every case after the hanging one
    assert check_code(program, tests=cases, timeout=2.0).score == pytest.approx(5 / 12)


def test_function_tests_time_out_one_by_one_and_the_solution_restarts():
    program = md("""
        calls = []
        def f(x):
            calls.append(x)
            if x == 2:
                while True:
                    pass
            return x * 10
        def seen():
            return len(calls)
    """)
    tests = ["assert f(1) == 10", "assert f(2) == 20", "assert f(3) == 30", "assert seen() == 1"]
    v = check_code(program, tests=tests, test_timeout=0.5)
    assert v.info["per_test"] == [True, False, True, True] and v.info["test_timeouts"] == 1  # restarted: a fresh `calls`
    v = check_code(program, tests=tests, test_timeout=0.5, early_stop=True)
    assert v.info["per_test"] == [True, False, False, False] and v.info["stopped_early"]


def test_apps_call_based_tests_and_json_strings():
    tests = {"fn_name": "two_sum", "inputs": [[[2, 7, 11], 9], [[3, 3], 6]], "outputs": [[[0, 1]], [0, 1]]}
    plain = md("def two_sum(nums, target):\n    seen = {}\n    for i, x in enumerate(nums):\n        if target - x in seen:\n            return (seen[target - x], i)\n        seen[x] = i")
    leetcode = md("class Solution:\n    def two_sum(self, nums, target):\n        for i in range(len(nums)):\n            for j in range(i + 1, len(nums)):\n                if nums[i] + nums[j] == target:\n                    return [i, j]")
    wrong = md("def two_sum(nums, target):\n    return [1, 0]")
    assert check_code(plain, tests=tests).score == 1.0
    assert check_code(leetcode, tests=tests).score == 1.0
    assert check_code(wrong, tests=tests).score == 0.0
    assert check_code(plain, tests=json.dumps(tests)).score == 1.0
    stdio = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})
    assert check_code(md("print(sum(map(int, input().split())))"), tests=stdio).score == 1.0
    assert check_code(md("print(4)"), tests=stdio).score == 0.0


def world_readable_venv() -> Path:
    """A virtual environment any user can read (a venv under /root is not, and as root the sandbox
    runs as a fresh uid), holding one installed package of its own."""
    python = nobody_python() or sys.executable
    base = Path(tempfile.mkdtemp(prefix="rk-venv-"))
    os.chmod(base, 0o755)
    subprocess.run([python, "-m", "venv", "--without-pip", str(base / "venv")], check=True, timeout=120)
    site = next((base / "venv" / "lib").glob("python3*/site-packages"))
    (site / "rk_installed_pkg.py").write_text("def answer():\n    return 42\n")
    for root, dirs, names in os.walk(base):
        for n in dirs + names:
            os.chmod(os.path.join(root, n), 0o755)
    return base


def test_a_chosen_interpreter_brings_its_packages_and_keeps_the_walls():
    if not shutil.which("bwrap"):
        pytest.skip("needs bubblewrap")
    base = world_readable_venv()
    python = str(base / "venv" / "bin" / "python")
    home = Path(tempfile.mkdtemp(prefix="rk-home-"))
    files = plant(home)
    try:
        program = md("import rk_installed_pkg\ndef f():\n    return rk_installed_pkg.answer()")
        assert check_code(program, tests=["assert f() == 42"]).info["error"] == "ModuleNotFoundError"  # the bare stdlib by default
        v = check_code(program, tests=["assert f() == 42"], python=python)
        assert v.score == 1.0, v.info
        res = run_sandboxed(HOST_ATTACK.replace("HOME", repr(str(home))), timeout=10, audit=False, python=python)
        assert res.status == "ok", (res.reason, res.stderr[-500:])
        check_host_attack(json.loads(res.stdout.strip().splitlines()[-1]), home, files)
        leak = run_sandboxed("import os\nprint(os.path.exists('/root/.bashrc'), os.path.exists(%r))" % str(SRC), python=python)
        assert leak.stdout.split() == ["False", "False"], leak.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def test_an_interpreter_the_sandbox_uid_cannot_read_is_a_clear_error():
    if os.geteuid() != 0 or not shutil.which("bwrap"):
        pytest.skip("as root: the sandbox runs as a fresh uid that must read the interpreter")
    base = world_readable_venv()
    os.chmod(base, 0o700)  # like a venv under /root
    try:
        v = check_code(md("def f():\n    return 1"), tests=["assert f() == 1"], python=str(base / "venv" / "bin" / "python"))
        assert v.score is None and "readable by any user" in v.reason
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_no_files_can_be_made_outside_the_private_tmp():
    """/dev, the hidden site-packages and / are read-only: the private 64 MB /tmp is the only place
    a candidate can write (a dir_fd open slips past the audit hook, so the OS has to hold)."""
    if sandbox_info()["tier"] != "bwrap":
        pytest.skip("bubblewrap tier")
    code = textwrap.dedent("""
        import os
        made = []
        for d in ("/dev/shm", "/dev", "/", "/usr", os.path.dirname(os.__file__) + "/site-packages"):
            try:
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
                os.close(os.open("rk_probe", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
                made.append(d)
            except OSError:
                pass
        print(made)
    """)
    for audit in (True, False):
        res = run_sandboxed(code, audit=audit)
        assert res.stdout.strip() == "[]", (audit, res.stdout, res.stderr[-300:])


def test_exit_and_quit_work_as_in_a_normal_interpreter():
    assert check_code(md("print(sum(map(int, input().split())))\nexit()"), tests=[{"input": "3 4", "output": "7"}]).score == 1.0
    assert check_code(md("print(1)\nquit(0)"), tests=[{"input": "", "output": "1"}]).score == 1.0


def test_what_is_not_data_cannot_be_passed_to_the_solution():
    code = md("def apply(f, x):\n    return f(x)\ndef ident(x):\n    return x")
    tests = ["assert apply(lambda v: v + 1, 1) == 2", "import math\nassert ident(math) is math", "assert ident([1, (2, 'a')]) == [1, (2, 'a')]"]
    v = check_code(code, tests=tests, debug=True)
    assert v.info["per_test"] == [False, False, True]
    assert v.info["error"].startswith("test 0: TypeError: a function cannot be passed to the solution")
