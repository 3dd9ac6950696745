"""Shared fixtures: where the build is, and helpers to run the project's
binaries. CVLLM_BUILD_DIR selects the build (default: <repo>/build)."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get('CVLLM_BUILD_DIR', ROOT / 'build'))


def binary(rel):
    p = BUILD / rel
    if not p.exists():
        pytest.fail(f'{p} not built (run ./scripts/setup)')
    return str(p)


@pytest.fixture
def cvllm():
    return binary('cli/cvllm')


@pytest.fixture
def shm_tool():
    return binary('tests/tools/shm_tool')


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=kw.pop('timeout', 120), **kw)
