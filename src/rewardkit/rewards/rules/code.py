"""Code unit-test reward: the fraction of the ``tests`` column that the completion's code passes,
run in the sandbox of :mod:`.sandbox` (see there for the isolation layers and what they contain)."""
from __future__ import annotations

import ast
import json
import os
from typing import Any

from ...protocol import time_left
from .base import Verdict
from .sandbox import MAX_OUTPUT, SandboxResult, run_program, sandbox_info

__all__ = ["MAX_OUTPUT", "SandboxResult", "check_code", "extract_code", "limits", "prepare_tests", "run_sandboxed", "sandbox_info"]

PYTHON_LANGS = {"python", "py", "python3", "py3"}
MAX_COMPLETION_CHARS = 1 << 20  # longer completions are not looked at (None): nothing parses them in this process
MAX_TESTS_CHARS = 1 << 20  # the tests are parsed here (to count them), so they are capped too


def limits() -> tuple[float, int]:
    """The operator's maxima for ``timeout`` (s) and ``memory_mb``: ``REWARDKIT_CODE_MAX_TIMEOUT``
    (default 60) and ``REWARDKIT_CODE_MAX_MEMORY_MB`` (default 4096). Options above them are clamped."""
    def read(name: str, default: float) -> float:
        raw = os.environ.get(name)
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a number") from None
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {raw!r}")
        return value
    return read("REWARDKIT_CODE_MAX_TIMEOUT", 60.0), int(read("REWARDKIT_CODE_MAX_MEMORY_MB", 4096))


def extract_code(text: str, blocks: str = "last") -> tuple[str | None, str]:
    """The program in a completion and where it came from: the last (``blocks="all"``: all,
    concatenated) fenced python block, else plain ``` blocks, else the whole text if it looks like
    code (whether it parses is found out in the sandbox: nothing here parses untrusted text).
    An unclosed final fence (a truncated generation) counts as a block."""
    if blocks not in ("last", "all"):
        raise ValueError(f"blocks must be 'last' or 'all', got {blocks!r}")
    found: list[tuple[str, str]] = []  # (language, body)
    lang, body = None, []
    for line in text.splitlines():
        stripped = line.strip()
        if lang is None:
            if stripped.startswith("```"):
                lang, body = (stripped[3:].strip().split() or [""])[0].lower(), []
        elif stripped.startswith("```") and not stripped.strip("`"):
            found.append((lang, "\n".join(body)))
            lang = None
        else:
            body.append(line)
    if lang is not None:
        found.append((lang, "\n".join(body)))
    for wanted, source in ((PYTHON_LANGS, "python_block"), ({""}, "plain_block")):
        chosen = [b for lng, b in found if lng in wanted and b.strip()]
        if chosen:
            return ("\n\n".join(chosen) if blocks == "all" else chosen[-1]), source
    if not found and text.strip() and _looks_like_code(text):
        return text, "text"
    return None, "none"


_CODE_STARTS = ("def ", "class ", "import ", "from ", "if ", "for ", "while ", "with ", "try:", "return ", "print(", "@", "#", "async ")


def _looks_like_code(text: str) -> bool:
    """A cheap, linear guess that unfenced text is a program: some line starts like a statement or
    assigns. Prose that slips through fails to parse in the sandbox and is then "no code found"."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(_CODE_STARTS) or (" = " in stripped and stripped.split(" = ", 1)[0].replace("_", "a").replace(".", "a").isalnum()):
            return True
    return False


def prepare_tests(tests: Any, entry_point: str | None = None) -> tuple[str, Any, int]:
    """``(mode, payload, total)`` for the sandbox, or ValueError saying why the tests are unusable.

    A list holds one test per entry. A string is test code: each top-level ``assert`` is a test and
    other statements are setup; without top-level asserts the whole string is one test (HumanEval's
    ``def check(candidate)`` is called with ``entry_point`` when it is given and not already called).
    A string holding a Python list of strings is read as that list. Input/output cases (a list of
    ``{"input": ..., "output": ...}``, or ``{"inputs": [...], "outputs": [...]}`` as in APPS) run the
    program once per case with the input on stdin and compare stdout token by token; with
    ``fn_name`` (APPS' call-based form) each case calls that function with the listed arguments."""
    if tests is None:
        raise ValueError("no tests given")
    if isinstance(tests, str) and tests.lstrip()[:1] in ("{", "[") and len(tests) <= MAX_TESTS_CHARS * 4:
        try:  # APPS and CodeContests store their cases as a JSON string
            decoded = json.loads(tests)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) or (isinstance(decoded, list) and decoded and all(isinstance(t, dict) for t in decoded)):
            return prepare_tests(decoded, entry_point)
    calls = _call_cases(tests)
    if calls is not None:
        return "list", calls, len(calls)
    stdio = _stdio_cases(tests)
    if stdio is not None:
        return "stdio", stdio, len(stdio)
    if isinstance(tests, str) and len(tests) > MAX_TESTS_CHARS:
        raise ValueError(f"the tests are {len(tests)} characters long (more than {MAX_TESTS_CHARS})")
    if isinstance(tests, (list, tuple)) and sum(len(t) for t in tests if isinstance(t, str)) > MAX_TESTS_CHARS:
        raise ValueError(f"the tests are more than {MAX_TESTS_CHARS} characters long")
    if isinstance(tests, str):
        try:
            tree = ast.parse(tests)
        except Exception as err:
            raise ValueError(f"the tests do not parse: {type(err).__name__}: {err}") from None
        if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, (ast.List, ast.Tuple)):
            try:
                listed = ast.literal_eval(tree.body[0].value)
            except ValueError:
                listed = None
            if isinstance(listed, (list, tuple)) and all(isinstance(t, str) for t in listed):
                return prepare_tests(list(listed), entry_point)
        if not tree.body:
            raise ValueError("no tests given (empty test code)")
        asserts = sum(isinstance(node, ast.Assert) for node in tree.body)
        if not asserts and entry_point:
            defines = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)
            calls = any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and getattr(n.value.func, "id", None) == "check" for n in tree.body)
            if defines and not calls:
                if not entry_point.isidentifier():
                    raise ValueError(f"entry_point {entry_point!r} is not an identifier")
                tests = f"{tests}\n\ncheck({entry_point})\n"
        return "script", tests, max(asserts, 1)
    if isinstance(tests, (list, tuple)):
        if not tests:
            raise ValueError("no tests given (empty list)")
        for i, test in enumerate(tests):
            if not isinstance(test, str):
                raise ValueError(f"test {i} is {type(test).__name__}, not a string of test code")
            try:
                ast.parse(test)
            except Exception as err:
                raise ValueError(f"test {i} does not parse: {type(err).__name__}: {err}") from None
        return "list", list(tests), len(tests)
    raise ValueError(f"unsupported tests format: {type(tests).__name__} (want a list of test snippets or a string of test code)")


def _call_cases(tests: Any) -> list[str] | None:
    """APPS' call-based form ``{"fn_name", "inputs": [[args...]...], "outputs": [...]}`` as test
    snippets (``None`` for any other form). The function is the solution's top-level ``fn_name`` or,
    LeetCode-style, a method of its ``Solution`` class; a tuple result compares as a list, and an
    expected value wrapped in a one-element list also matches unwrapped (APPS stores both)."""
    if not (isinstance(tests, dict) and tests.get("fn_name")):
        return None
    name, inputs, outputs = tests["fn_name"], tests.get("inputs"), tests.get("outputs")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"fn_name {name!r} is not an identifier")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs) or not inputs:
        raise ValueError("call-based tests need 'inputs' and 'outputs' lists of the same, non-zero length")
    snippets = []
    for i, (args, want) in enumerate(zip(inputs, outputs)):
        args = args if isinstance(args, list) else [args]
        try:
            args_src, want_src = repr(args), repr(want)
            ast.literal_eval(args_src)
            ast.literal_eval(want_src)
        except (ValueError, SyntaxError, RecursionError):
            raise ValueError(f"test {i}: inputs and outputs must be plain JSON values") from None
        snippets.append(
            f"_f = globals()[{name!r}] if {name!r} in globals() else Solution().{name}\n"
            f"_got = _f(*{args_src})\n"
            "_got = list(_got) if isinstance(_got, tuple) else _got\n"
            f"_want = {want_src}\n"
            "assert _got == _want or (isinstance(_want, list) and len(_want) == 1 and _got == _want[0])"
        )
    return snippets


def _stdio_cases(tests: Any) -> list[dict[str, str]] | None:
    """Input/output cases as ``[{"input", "output"}]``, or ``None`` when ``tests`` is not of that form."""
    if isinstance(tests, dict) and "inputs" in tests and "outputs" in tests:
        inputs, outputs = tests["inputs"], tests["outputs"]
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise ValueError("'inputs' and 'outputs' must be lists of the same length")
        tests = [{"input": i, "output": o} for i, o in zip(inputs, outputs)]
    elif not (isinstance(tests, list) and tests and all(isinstance(t, dict) for t in tests)):
        return None
    cases = []
    for i, case in enumerate(tests):
        if not isinstance(case, dict) or not isinstance(case.get("input"), str) or not isinstance(case.get("output"), str):
            raise ValueError(f"test {i}: an input/output case needs string 'input' and 'output'")
        cases.append({"input": case["input"], "output": case["output"]})
    if not cases:
        raise ValueError("no tests given (empty list)")
    if sum(len(c["input"]) + len(c["output"]) for c in cases) > MAX_TESTS_CHARS * 4:
        raise ValueError("the input/output cases are too large")
    return cases


# --------------------------------------------------------------------------- the check


def check_code(completion: str, *, tests: Any, entry_point: str | None = None, timeout: float = 5.0, memory_mb: int = 512, blocks: str = "last", debug: bool = False,
               test_timeout: float | None = None, early_stop: bool = False, python: str | None = None) -> Verdict:
    """Fraction of ``tests`` passed by the completion's code. ``None`` only when undecidable (no
    code, no usable tests, a completion over :data:`MAX_COMPLETION_CHARS`, the sandbox refusing or
    failing); code that runs and fails scores 0. ``timeout`` / ``memory_mb`` are clamped to
    :func:`limits`. ``test_timeout`` limits each test on its own (competitive-programming style: a
    hanging case fails alone and the rest still count; the whole run then gets at least
    ``test_timeout`` per test); ``early_stop`` stops at the first failing test (cheaper in RL).
    ``python`` (``"venv"`` or a path) runs the code with that interpreter's installed packages
    (bubblewrap only; see :func:`~.sandbox.sandbox_info`). Errors name the exception type only; ``debug=True`` adds messages (which can
    carry file contents or the tests, so never turn it on for a server)."""
    if len(completion) > MAX_COMPLETION_CHARS:
        return Verdict(None, f"completion too long for the code check ({len(completion)} characters > {MAX_COMPLETION_CHARS})", {"status": "too_long"})
    try:
        mode, payload, total = prepare_tests(tests, entry_point)
    except ValueError as err:
        return Verdict(None, str(err))
    code, source = extract_code(completion, blocks)
    if code is None:
        return Verdict(None, "no code found", {"status": "no_code", "total": total})
    max_timeout, max_memory = limits()
    if test_timeout is not None:
        if not test_timeout > 0:
            return Verdict(None, f"test_timeout must be positive, got {test_timeout}")
        test_timeout = min(float(test_timeout), max_timeout)
        timeout = max(float(timeout), test_timeout * total + 2.0)
    timeout, memory_mb = min(float(timeout), max_timeout), min(int(memory_mb), max_memory)
    left = time_left()  # a work deadline (the server's, per request) caps the run
    cut = left is not None and left < timeout
    if cut:
        if left < 0.05:
            return Verdict(None, "deadline reached before this sample was checked", {"status": "deadline", "total": total})
        timeout = left
    res = run_program(code, mode, payload, total, timeout, memory_mb, audit=True, max_output=4096, debug=debug, test_timeout=test_timeout, early_stop=early_stop, python=python)
    info = {"passed": res.passed, "total": total, "status": res.status, "error": res.error, "per_test": res.per_test, "code_from": source}
    if test_timeout is not None:
        info["test_timeouts"] = res.test_timeouts
    if early_stop:
        info["stopped_early"] = res.stopped_early
    if cut and res.status == "timeout":  # stopped by the deadline, not by its own timeout: undecided
        return Verdict(None, f"deadline reached after {res.passed} of {total} tests", {**info, "status": "deadline", "passed": None})
    if res.status == "syntax_error" and source == "text":  # unfenced prose that only looked like code
        return Verdict(None, "no code found", {**info, "status": "no_code", "passed": None})
    if res.status == "sandbox_error":
        return Verdict(None, res.reason, {**info, "passed": None})
    return Verdict(res.passed / total, res.reason if res.status != "ok" else None, info)


check_code.option_only = ("timeout", "memory_mb", "blocks", "debug", "test_timeout", "early_stop", "python")  # never read from data columns
check_code.concurrency = lambda: max(2, os.cpu_count() or 2)  # samples wait on subprocesses: run them side by side


def run_sandboxed(code: str, timeout: float = 5.0, memory_mb: int = 512, *, tests: Any = None, entry_point: str | None = None, audit: bool = True, max_output: int = MAX_OUTPUT, debug: bool = True,
                  test_timeout: float | None = None, early_stop: bool = False, python: str | None = None) -> SandboxResult:
    """Run ``code`` (then ``tests``, if given) in the sandbox; time this for the per-call overhead.
    ``audit=False`` drops the audit hook, to test what the OS-level layers alone contain."""
    if tests is None:
        mode, payload, total = "list", [], 0
    else:
        mode, payload, total = prepare_tests(tests, entry_point)
    return run_program(code, mode, payload, total, timeout, memory_mb, audit=audit, max_output=max_output, debug=debug, test_timeout=test_timeout, early_stop=early_stop, python=python)
