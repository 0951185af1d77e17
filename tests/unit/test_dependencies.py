"""Dependencies: floors past published advisories, tools of the demo and bench out of the runtime,
and an image built from a lock file with hashes."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = {canonicalize_name(Requirement(r).name): Requirement(r) for r in PROJECT["dependencies"]}


def locked() -> dict[str, str]:
    text = (ROOT / "deploy/requirements.lock").read_text()
    hashes = r"((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)"
    entries = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+) \\\n" + hashes, text, flags=re.M)
    pinned = [line for line in text.splitlines() if "==" in line and not line.startswith("#")]
    assert len(entries) == len(pinned), "every pinned package carries its hashes"
    return {canonicalize_name(name): version for name, version, _ in entries}


def test_floors_are_past_the_published_advisories():
    assert not RUNTIME["aiohttp"].specifier.contains("3.14.0")
    assert RUNTIME["aiohttp"].specifier.contains("3.14.1")
    assert not RUNTIME["waitress"].specifier.contains("3.0.0")
    devtools = {canonicalize_name(Requirement(r).name): Requirement(r)
                for r in PROJECT["optional-dependencies"]["devtools"]}
    assert not devtools["requests"].specifier.contains("2.32.3")
    assert not devtools["urllib3"].specifier.contains("2.4.0")


def test_demo_bench_and_mock_buyer_tools_are_not_runtime_dependencies():
    assert not {"requests", "urllib3", "standardwebhooks"} & set(RUNTIME)
    assert ".[test,devtools" in (ROOT / "Makefile").read_text()     # make install has them


def test_the_image_installs_every_runtime_dependency_from_the_hashed_lock():
    versions = locked()
    for name, requirement in RUNTIME.items():
        assert name in versions, f"{name} is not in deploy/requirements.lock"
        assert requirement.specifier.contains(versions[name]), (name, versions[name])
    assert "requests" not in versions and "standardwebhooks" not in versions
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert "--require-hashes" in dockerfile and "deploy/requirements.lock" in dockerfile
