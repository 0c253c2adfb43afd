"""Fixtures and reporting for the official-Python-SDK suite.

Needs MANIAC_BASE_URL (http://127.0.0.1:PORT/v1), MANIAC_API_KEY and
MANIAC_OTHER_KEY (a key of a second organization); tests/compat/run.sh sets
them. Every test runs twice: with the SDK's default lenient parsing and with
`_strict_response_validation=True`, where every response body and stream
event must validate against the SDK's pydantic models.
"""

from __future__ import annotations

import os
from typing import Callable

import openai
import pytest

MODES = ("lenient", "strict")


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set (run tests/compat/run.sh)", returncode=2)
    return value


@pytest.fixture(scope="session")
def base_url() -> str:
    return _env("MANIAC_BASE_URL")


@pytest.fixture(scope="session")
def api_key() -> str:
    return _env("MANIAC_API_KEY")


@pytest.fixture(scope="session")
def other_key() -> str:
    return _env("MANIAC_OTHER_KEY")


@pytest.fixture(scope="module", params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def make_client(mode: str, base_url: str, api_key: str) -> Callable[..., openai.OpenAI]:
    """Builds clients with the module's strictness; keyword arguments override."""

    def make(**kwargs) -> openai.OpenAI:
        options = {
            "base_url": base_url,
            "api_key": api_key,
            "max_retries": 0,
            "timeout": 30.0,
            "_strict_response_validation": mode == "strict",
        }
        options.update(kwargs)
        return openai.OpenAI(**options)

    return make


@pytest.fixture(scope="module")
def client(make_client) -> openai.OpenAI:
    return make_client()


# ---------------------------------------------------------------- reporting

_counts = {"passed": 0, "failed": 0, "xfailed": 0, "skipped": 0}


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _counts["failed"] += 1


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if hasattr(report, "wasxfail"):
        if report.skipped:
            _counts["xfailed"] += 1
        elif report.failed:  # strict xpass
            _counts["failed"] += 1
        elif report.when == "call":  # non-strict xpass
            _counts["passed"] += 1
        return
    if report.when == "call":
        if report.passed:
            _counts["passed"] += 1
        elif report.failed:
            _counts["failed"] += 1
        elif report.skipped:
            _counts["skipped"] += 1
    elif report.failed:  # setup/teardown error
        _counts["failed"] += 1
    elif report.skipped and report.when == "setup":
        _counts["skipped"] += 1


def pytest_report_header(config: pytest.Config) -> str:
    return f"openai {openai.__version__} (python SDK), gateway {os.environ.get('MANIAC_BASE_URL')}"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    # Outermost wrapper: runs after the terminal reporter's own summary, so
    # the line below is the last one pytest prints.
    yield
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    extra = []
    if _counts["xfailed"]:
        extra.append(f"{_counts['xfailed']} xfailed (known gateway incompatibilities)")
    if _counts["skipped"]:
        extra.append(f"{_counts['skipped']} skipped")
    line_end = f"{_counts['passed']} passed, {_counts['failed']} failed"
    if reporter is not None:
        if extra:
            reporter.write_line("python suite: " + ", ".join(extra))
        reporter.write_line(line_end)
    else:
        if extra:
            print("python suite: " + ", ".join(extra))
        print(line_end)
