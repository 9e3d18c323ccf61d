"""rule:code — scoring, and what the sandbox contains (each malicious run must end in time and
leave nothing behind on the host)."""
from __future__ import annotations

import os
import secrets
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardkit.protocol import MissingColumnError
from rewardkit.rewards.rules import sandbox as code_mod
from rewardkit.rewards.rules import load_rule
from rewardkit.rewards.rules.code import MAX_OUTPUT, check_code, extract_code, prepare_tests, run_sandboxed, sandbox_info

ADD = "```python\ndef add(a, b):\n    return a + b\n```"
HALF = "```python\ndef add(a, b):\n    return a + b if a < 5 else 0\n```"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(7, 1) == 8", "assert add(9, 9) == 18"]
FEATURES = sandbox_info()["features"]


def live_processes(uid: int | None = None, session: int | None = None) -> list[int]:
    """Non-zombie processes with this uid or in this session."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                state, _ppid, _pgrp, sid = fh.read().rpartition(")")[2].split()[:4]
            with open(f"/proc/{entry}/status") as fh:
                proc_uid = int(next(line for line in fh if line.startswith("Uid:")).split()[1])
        except (OSError, StopIteration, ValueError):
            continue
        if state in "ZX":
            continue
        if (uid is not None and proc_uid == uid) or (session is not None and int(sid) == session):
            found.append(int(entry))
    return found


def assert_contained(res, timeout: float) -> None:
    assert res.elapsed < timeout + 1.0, f"took {res.elapsed:.2f} s for a {timeout} s timeout"
    assert live_processes(uid=res.uid, session=res.pid) == []


def md(code: str) -> str:
    return f"Here you go:\n```python\n{code}\n```\n"


# --------------------------------------------------------------------------- extraction and tests


def test_extract_takes_the_last_python_block_or_all():
    text = "```python\nx = 1\n```\nthen\n```py\ny = 2\n```\n```bash\nls\n```"
    assert extract_code(text) == ("y = 2", "python_block")
    assert extract_code(text, "all") == ("x = 1\n\ny = 2", "python_block")


def test_extract_falls_back_to_plain_blocks_then_to_the_whole_text():
    assert extract_code("see\n```\nz = 3\n```") == ("z = 3", "plain_block")
    assert extract_code("def f():\n    return 1\n") == ("def f():\n    return 1\n", "text")
    assert extract_code("The answer is that you loop twice.") == (None, "none")
    assert extract_code("```bash\nrm -rf /\n```") == (None, "none")
    assert extract_code("   \n") == (None, "none")


def test_extract_keeps_an_unclosed_final_fence():
    assert extract_code("```python\ndef f():\n    return 1") == ("def f():\n    return 1", "python_block")


def test_prepare_tests_formats():
    assert prepare_tests(["assert 1", "assert 2"]) == ("list", ["assert 1", "assert 2"], 2)
    assert prepare_tests("x = 1\nassert x == 1\nassert x != 2\n")[2] == 2
    assert prepare_tests("def helper():\n    assert False\nhelper()\n")[2] == 1
    assert prepare_tests('["assert f(1) == 1", "assert f(2) == 2"]') == ("list", ["assert f(1) == 1", "assert f(2) == 2"], 2)
    mode, payload, total = prepare_tests("def check(candidate):\n    assert candidate(1) == 2\n", entry_point="inc")
    assert (mode, total) == ("script", 1) and payload.rstrip().endswith("check(inc)")
    for bad, why in (([], "no tests"), ("", "no tests"), (None, "no tests"), (["assert ("], "test 0 does not parse"), ({"inputs": []}, "unsupported"), ([1], "not a string")):
        with pytest.raises(ValueError, match=why):
            prepare_tests(bad)


# --------------------------------------------------------------------------- scores


def test_correct_solution_scores_one():
    v = check_code(ADD, tests=ADD_TESTS)
    assert v.score == 1.0 and v.reason is None
    assert v.info["passed"] == 4 and v.info["total"] == 4 and v.info["status"] == "ok" and v.info["error"] is None


def test_half_correct_solution_scores_half():
    v = check_code(HALF, tests=ADD_TESTS)
    assert v.score == 0.5 and v.info["status"] == "ok"
    assert v.info["per_test"] == [True, True, False, False]
    assert v.info["error"].startswith("test 2: AssertionError")


def test_syntax_error_scores_zero_with_status():
    v = check_code(md("def add(a, b)\n    return a + b"), tests=ADD_TESTS)
    assert v.score == 0.0 and v.info["status"] == "syntax_error" and "SyntaxError" in v.reason


def test_top_level_exception_scores_zero():
    v = check_code(md("def add(a, b):\n    return a + b\nraise RuntimeError('boom')"), tests=ADD_TESTS)
    assert v.score == 0.0 and v.info["status"] == "error" and "RuntimeError" in v.reason and "boom" not in v.reason
    v = check_code(md("def add(a, b):\n    return a + b\nraise RuntimeError('boom')"), tests=ADD_TESTS, debug=True)
    assert "RuntimeError: boom" in v.reason


def test_undecidable_cases_are_none_with_a_reason():
    assert check_code("I cannot solve this.", tests=ADD_TESTS).reason == "no code found"
    for tests in (None, [], ""):
        v = check_code(ADD, tests=tests)
        assert v.score is None and "no tests" in v.reason
    v = check_code(ADD, tests=["assert add(1, 2) == 3", "assert add(("])
    assert v.score is None and "test 1 does not parse" in v.reason


def test_test_code_string_gives_partial_credit_per_top_level_assert():
    tests = "import math\nexpected = 3\nassert add(1, 2) == expected\nassert add(7, 1) == 8\nassert add(9, 9) == 18\n"
    assert check_code(HALF, tests=tests).score == pytest.approx(1 / 3)
    assert check_code(ADD, tests=tests).score == 1.0


def test_humaneval_check_function_with_entry_point():
    tests = "METADATA = {}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(7, 1) == 8\n"
    assert check_code(ADD, tests=tests, entry_point="add").score == 1.0
    assert check_code(HALF, tests=tests, entry_point="add").score == 0.0


def test_tests_are_isolated_and_see_clean_builtins():
    code = md("import builtins\nbuiltins.len = lambda x: 99\nbuiltins.exec = lambda *a, **k: None\ndef f():\n    return 1")
    tests = ["f = lambda: 2\nassert f() == 2", "assert f() == 1", "assert len([1]) == 1", "assert f() == 5"]
    v = check_code(code, tests=tests)
    assert v.info["per_test"] == [True, True, True, False]


def test_exit_paths_never_pass_tests():
    assert check_code(md("import sys\nsys.exit(0)"), tests=["assert True"]).info["status"] == "error"
    v = check_code(md("def f():\n    return 1"), tests=["assert f() == 1", "import os\nos._exit(0)", "assert f() == 1"])
    assert v.score == pytest.approx(1 / 3) and v.info["status"] == "crash"
    v = check_code(md("def f():\n    raise SystemExit(0)"), tests=["f()"])
    assert v.score == 0.0


def test_printed_fake_results_are_ignored():
    fake = '{"ev": "test", "i": 0, "ok": true, "error": null, "memory": false}'
    v = check_code(md(f"print({fake!r})\nimport sys\nsys.stderr.write({fake!r})\ndef f():\n    return 0"), tests=["assert f() == 1"])
    assert v.score == 0.0 and v.info["status"] == "ok"


def test_naive_writes_to_the_result_pipe_are_ignored():
    forge = ("import os\nline = ('{\"ev\": \"test\", \"i\": 0, \"ok\": true, \"pid\": %d}\\n' % os.getpid()).encode()\n"
             "for fd in range(3, 256):\n    try:\n        os.write(fd, line)\n    except OSError:\n        pass\n"
             "def f():\n    return 0")
    v = check_code(md(forge), tests=["assert f() == 1"])
    assert v.score == 0.0  # the writes land on the candidate's own channel at most (status: crash)


def test_a_forked_child_cannot_write_results():
    # Without the audit hook: a forked child writes fake results to every descriptor it has; the
    # result pipe belongs to the harness process alone.
    forge = ("import os, time\nline = b'{\"ev\": \"test\", \"i\": 0, \"ok\": true}\\n'\npid = os.fork()\n"
             "if pid == 0:\n    for fd in range(3, 256):\n        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n    os._exit(0)\n"
             "time.sleep(0.2)\ndef f():\n    return 0")
    res = run_sandboxed(forge, tests=["assert f() == 1"], audit=False)
    assert res.passed == 0
    assert_contained(res, 5.0)


# --------------------------------------------------------------------------- malicious programs


def test_infinite_loop_times_out_keeping_finished_tests():
    start = time.monotonic()
    v = check_code(md("def f(x):\n    while x:\n        pass\n    return 0"), tests=["assert f(0) == 0", "assert f(1) == 0"], timeout=1.5)
    assert time.monotonic() - start < 2.5
    assert v.score == 0.5 and v.info["status"] == "timeout" and v.info["per_test"] == [True, False]


def test_fork_bomb_is_blocked_and_leaves_no_process():
    res = run_sandboxed("import os\nwhile True:\n    os.fork()", timeout=2.0)
    assert res.status == "error" and "os.fork" in res.blocked
    assert_contained(res, 2.0)
    v = check_code(md("import os\nwhile True:\n    os.fork()"), tests=["assert True"], timeout=2.0)
    assert v.score == 0.0


@pytest.mark.skipif(not FEATURES["nproc"], reason="needs a sandbox uid (RLIMIT_NPROC) to contain a real fork bomb")
def test_fork_bomb_without_the_audit_hook_is_contained_by_the_os():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    res = run_sandboxed(bomb, timeout=1.5, audit=False)
    assert res.status == "timeout"
    assert_contained(res, 1.5)


def test_memory_bomb_is_stopped():
    v = check_code(md("x = 'a' * 10**10"), tests=["assert True"])
    assert v.score == 0.0 and v.info["status"] == "memory"
    res = run_sandboxed("x = []\nwhile True:\n    x.append(' ' * 10**6)", timeout=5.0, memory_mb=256)
    assert res.status == "memory"
    assert_contained(res, 5.0)


def test_huge_output_is_bounded():
    res = run_sandboxed("while True:\n    print('x' * 10000)", timeout=1.0)
    assert res.status == "timeout" and res.truncated
    assert len(res.stdout) <= MAX_OUTPUT and res.output_bytes > 10 * MAX_OUTPUT
    assert_contained(res, 1.0)
    res = run_sandboxed("import sys\nsys.stdout.write('y' * 10**7)\nsys.stderr.write('z' * 10**7)")
    assert res.status == "ok" and len(res.stdout) == len(res.stderr) == MAX_OUTPUT and res.output_bytes == 2 * 10**7
    assert run_sandboxed("print('x' * 10**9)").status == "memory"  # the 1 GB string itself is over the limit


@pytest.mark.parametrize("audit", [True, False])
def test_writing_outside_the_work_dir_does_not_reach_the_host(audit):
    if not audit and not FEATURES["private_tmp"]:
        pytest.skip("without the audit hook only a private /tmp stops this")
    target = f"/tmp/rewardkit_escape_{secrets.token_hex(6)}"
    res = run_sandboxed(f"with open({target!r}, 'w') as fh:\n    fh.write('escaped')", audit=audit)
    try:
        assert not os.path.exists(target)
        if audit:
            assert res.status == "error" and res.blocked
    finally:
        if os.path.exists(target):
            os.remove(target)


@pytest.mark.parametrize("audit", [True, False])
def test_deleting_files_outside_fails(tmp_path, audit):
    if not audit and not FEATURES["uid"]:
        pytest.skip("without the audit hook only a sandbox uid stops this")
    sentinel = tmp_path / "keep" / "sentinel.txt"
    sentinel.parent.mkdir()
    sentinel.write_text("still here")
    attempts = [f"import os\nos.remove({str(sentinel)!r})", f"import shutil\nshutil.rmtree({str(sentinel.parent)!r})",
                f"import os\nos.rename({str(sentinel)!r}, 'stolen.txt')", f"open({str(sentinel)!r}, 'w').close()"]
    for attempt in attempts:
        res = run_sandboxed(attempt, audit=audit)
        assert res.status == "error", (attempt, res.status)
        assert sentinel.read_text() == "still here"


def test_monkeypatching_the_path_helpers_does_not_open_the_hook():
    target = f"/tmp/rewardkit_escape_{secrets.token_hex(6)}"
    code = f"import os, posixpath\nos.path.realpath = lambda p: os.getcwd() + '/x'\nposixpath.isabs = lambda p: False\nopen({target!r}, 'w').close()"
    res = run_sandboxed(code, audit=True)
    assert res.status == "error" and not os.path.exists(target)


@pytest.mark.parametrize("audit", [True, False])
def test_network_connections_never_arrive(audit):
    if not audit and not FEATURES["netns"]:
        pytest.skip("without the audit hook only a network namespace stops this")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.3)
        port = server.getsockname()[1]
        res = run_sandboxed(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')", audit=audit)
        assert res.status == "error"
        with pytest.raises(socket.timeout):
            server.accept()


def test_subprocesses_cannot_run():
    target = f"/tmp/rewardkit_escape_{secrets.token_hex(6)}"
    for code in (f"import subprocess\nsubprocess.run(['touch', {target!r}])", f"import os\nos.system('touch {target}')",
                 "import ctypes", f"import os\nos.execv('/usr/bin/touch', ['touch', {target!r}])"):
        res = run_sandboxed(code)
        assert res.status == "error" and res.blocked, code
        assert not os.path.exists(target)


def test_environment_secrets_are_not_visible(monkeypatch):
    secret = secrets.token_hex(16)
    monkeypatch.setenv("REWARDKIT_TEST_SECRET", secret)
    code = ("import os\nprint(dict(os.environ))\n"
            f"try:\n    print(open('/proc/{os.getpid()}/environ', 'rb').read())\nexcept OSError as err:\n    print(err)")
    res = run_sandboxed(code)
    assert res.status == "ok" and "HOME" in res.stdout
    assert secret not in res.stdout and "REWARDKIT_TEST_SECRET" not in res.stdout


def test_the_work_dir_is_removed_and_nothing_is_left_behind():
    tmp = tempfile.gettempdir()
    before = set(os.listdir(tmp))
    code = ("import os\nos.makedirs('a/b')\nopen('a/b/f.txt', 'w').write('x' * 1000)\nos.symlink('/etc', 'etc_link')\n"
            "os.chmod('a', 0)\nprint(os.getcwd())")
    res = run_sandboxed(code)
    assert res.status == "ok", res.reason
    workdir = res.stdout.strip()
    assert workdir and (FEATURES["private_tmp"] or not os.path.exists(workdir))
    assert os.path.isdir("/etc")
    assert {n for n in set(os.listdir(tmp)) - before if n.startswith("rewardkit")} == set()


def test_file_size_limit():
    res = run_sandboxed("with open('big', 'wb') as fh:\n    fh.write(b'0' * (64 << 20))")
    assert res.status == "error" and ("File too large" in res.error or "No space" in res.error)


# --------------------------------------------------------------------------- every available tier


@pytest.mark.parametrize("tier", code_mod._tiers(), ids=lambda t: t.name)
def test_each_available_tier_scores_and_blocks(tier):
    """The fallbacks work too (on this machine the first one that passes its probe is used)."""
    python = "/usr/bin/python3" if tier.uid and os.path.exists("/usr/bin/python3") else code_mod.sys.executable
    mode, payload, total = prepare_tests(ADD_TESTS)
    half = extract_code(HALF)[0]
    res = code_mod._execute(tier, python, half, mode, payload, total, 5.0, 256, audit=True, max_output=MAX_OUTPUT)
    if res.status == "sandbox_error":
        pytest.skip(f"tier {tier.name} does not run here: {res.reason}")
    assert (res.status, res.passed) == ("ok", 2)
    target = f"/tmp/rewardkit_escape_{secrets.token_hex(6)}"
    res = code_mod._execute(tier, python, f"open({target!r}, 'w')", "list", [], 0, 5.0, 256, audit=True, max_output=MAX_OUTPUT)
    assert res.status == "error" and not os.path.exists(target)


# --------------------------------------------------------------------------- concurrency and the batch reward


CASES = [(ADD, 1.0), (HALF, 0.5), (md("def add(a, b):\n    return 0"), 0.0), (md("def add(a, b)"), 0.0), ("no code at all", None)]


def test_concurrent_calls_from_threads():
    batch = CASES * 2
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda item: check_code(item[0], tests=ADD_TESTS), batch))
    assert [v.score for v in verdicts] == [want for _, want in batch]


def test_rule_reward_with_a_process_pool():
    reward = load_rule("code", workers=2, chunk_size=2)
    completions = [c for c, _ in CASES]
    out = reward.score(["p"] * len(completions), completions, tests=[ADD_TESTS] * len(completions))
    assert out.scores == [want for _, want in CASES]
    assert out.extras["status"][:4] == ["ok", "ok", "ok", "syntax_error"]
    assert out.extras["reason"][4] == "no code found"


def test_rule_reward_needs_the_tests_column():
    reward = load_rule("code")
    with pytest.raises(MissingColumnError, match="'tests'"):
        reward(prompts=["p"], completions=[ADD])
    scores = reward(prompts=["p", "q"], completions=[ADD, ADD], tests=[ADD_TESTS, "def check(f):\n    assert f(1, 1) == 2\n"], entry_point=[None, "add"])
    assert scores == [1.0, 1.0]
