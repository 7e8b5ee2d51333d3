"""A real Label Studio server for the tests: started once per test session from its own virtual
environment (``.ci/install`` makes it in build/label-studio-venv; ``$TORCH_AL_LABEL_STUDIO`` may
name another ``label-studio`` executable), data under build/, on a free loopback port, stopped at
the end. Missing, it skips the tests, unless TORCH_AL_REQUIRE_LABEL_STUDIO=1 (CI) fails them."""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from common_utils import REPO_ROOT

API_KEY = "torch-al-test-token-0123456789abcdef"  # a legacy token, set when the admin is created
ADMIN = ("admin@example.com", "torch-al-test-password")


def executable() -> str | None:
    for candidate in (os.environ.get("TORCH_AL_LABEL_STUDIO"), os.path.join(REPO_ROOT, "build", "label-studio-venv", "bin", "label-studio")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("label-studio")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(data_dir: str, files_root: str) -> dict:
    # Label Studio also reads bare names (HOST, PORT, USERNAME...): drop them so the machine's own cannot leak in.
    environment = {key: value for key, value in os.environ.items() if key not in ("HOST", "PORT", "USERNAME", "PASSWORD", "USER_TOKEN", "DEBUG")}
    environment.update(
        LABEL_STUDIO_BASE_DATA_DIR=data_dir,
        LABEL_STUDIO_USERNAME=ADMIN[0],
        LABEL_STUDIO_PASSWORD=ADMIN[1],
        LABEL_STUDIO_USER_TOKEN=API_KEY,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",  # 1.23 turns legacy tokens off by default
        SENTRY_DSN="",  # no error reports sent anywhere
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",  # images exported as files (export --image-dir)
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=files_root,
    )
    return environment


def start_label_studio():
    """(url, process, files_root) of a fresh server — files_root the folder under which it serves
    local files — or a skip / failure saying what is missing."""
    command = executable()
    if command is None:
        reason = "Label Studio is not installed (.ci/install puts it in build/label-studio-venv; or set TORCH_AL_LABEL_STUDIO)"
        if os.environ.get("TORCH_AL_REQUIRE_LABEL_STUDIO") == "1":
            pytest.fail(f"TORCH_AL_REQUIRE_LABEL_STUDIO=1 but {reason}")
        pytest.skip(reason)
    data_dir = os.path.join(REPO_ROOT, "build", "label-studio-data")
    shutil.rmtree(data_dir, ignore_errors=True)
    files_root = os.path.join(data_dir, "files")
    os.makedirs(files_root)
    port = free_port()
    arguments = [command, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir, "--log-level", "WARNING"]
    with open(os.path.join(data_dir, "server.log"), "wb") as log:
        process = subprocess.Popen(arguments, env=server_environment(data_dir, files_root), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"label-studio exited with {process.returncode}; its log: {open(os.path.join(data_dir, 'server.log')).read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return url, process, files_root
        except OSError:
            time.sleep(0.5)
    stop(process)
    raise TimeoutError(f"label-studio did not answer {url}/health within 240 s")


def stop(process: subprocess.Popen) -> None:
    """Stops the server and every process it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
