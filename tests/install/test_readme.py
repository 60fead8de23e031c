"""What a new user does: the README's commands, verbatim.

``test_the_first_command_on_a_fresh_machine`` copies the checkout, runs the README's first
command (a new virtual environment, a plain ``pip install``, ``vigil demo``) and uses the demo
it starts: the setup link, the web interface, the camera, Ctrl-C. CI installs every extra
for the suite, so only this test sees what a plain install lacks.

``test_every_readme_command`` runs every other command of the README's code blocks that can
run here, verbatim, in a folder holding the files they name; the few that cannot run here say
why, and a new command in the README fails the test until it is run or explained.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.alerts.alert_servers import free_port
from tests.rtsp_relay import require_tools
from vigil.paths import shared_data_dir, shared_models_dir

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

#: README commands that are not run here, and why; everything else in a code block runs.
NOT_RUN_HERE = {
    "bash scripts/test.sh": "the test command is CI's own run of this suite",
    "vigil models pull yolox-nano": "downloads from the internet, which this machine cannot "
    "reach; tests/unit/detect/test_model_registry.py pulls through a local file server, and "
    "the cache here is filled with the same pinned file",
}


def code_blocks(text: str) -> list[list[str]]:
    """The command lines of each ```bash block (comments and blank lines dropped)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [[line for line in block.splitlines() if line.strip() and
             not line.lstrip().startswith("#")] for block in blocks]  # fmt: skip


def command_of(line: str) -> str:
    """A line without its trailing comment (the key of ``NOT_RUN_HERE`` and of the runs)."""
    return line.split("  #", maxsplit=1)[0].strip()


def shared(path: Path) -> Path:
    if not path.exists():
        reason = f"shared file {path} is missing (set VIGIL_SHARED_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def run_line(line: str, cwd: Path, env: dict[str, str], *, stdin: str = "",
             timeout: float = 600) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """One README line through bash, verbatim, with no terminal (prompts read stdin)."""
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, input=stdin, text=True,
                          capture_output=True, timeout=timeout, start_new_session=True,
                          check=False)  # fmt: skip


class Demo:
    """``vigil demo`` (or any server line) started through bash, read line by line."""

    def __init__(self, line: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.out = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            ["bash", "-c", line], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text(encoding="utf-8"))
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} in the output:\n{self.text()[-6000:]}")

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def interrupt(self, sig: signal.Signals = signal.SIGINT, timeout: float = 30) -> int:
        """Ctrl-C as a terminal sends it: to the whole foreground process group."""
        os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.out.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.out.close()


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.5)


def use_the_web_interface(base: str, token: str) -> None:
    """What a new user does in the browser, through the same HTTP calls."""
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/").status_code == 200
        assert client.get("/api/health").json()["setup_required"] is True
        assert client.post("/api/setup", json={"name": "me", "password": "a fine password"}
                           ).status_code == 403  # fmt: skip
        made = client.post("/api/setup", json={"name": "me", "password": "a fine password",
                                               "token": token})  # fmt: skip
        assert made.status_code == 201, made.text
        login = client.post("/api/login", json={"name": "me", "password": "a fine password"})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        wait_until(lambda: client.get("/api/cameras").json()[0]["online"], 120,
                   "the demo camera did not come online")  # fmt: skip
        wait_until(lambda: client.get("/api/events").json()["items"], 180,
                   "the demo camera made no event")  # fmt: skip
        wait_until(lambda: client.get("/api/recordings").json(), 120,
                   "the demo camera recorded nothing")  # fmt: skip


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The checkout as a user gets it: tracked and untracked-but-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")  # fmt: skip
    target = tmp_path / "vigil"
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def user_env(home: Path) -> dict[str, str]:
    """A user's environment: no virtual environment active, caches of their own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}  # fmt: skip
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p != venv_bin)  # fmt: skip
    env["VIGIL_CACHE_DIR"] = str(home / "vigil-cache")
    return env


@pytest.mark.slow
def test_the_first_command_on_a_fresh_machine(checkout: Path, tmp_path: Path) -> None:
    first = code_blocks(README.read_text(encoding="utf-8"))[0]
    assert len(first) == 2, "the README's first block holds the demo and the test command"
    demo = Demo(first[0], checkout, user_env(tmp_path), tmp_path / "first-command.log")
    try:
        link = demo.wait_for_output(r"open (http://127\.0\.0\.1:\d+)/#/setup\?token=(\S+)", 1200)
        use_the_web_interface(link.group(1), link.group(2))
        assert demo.interrupt() == 0, demo.text()[-4000:]
    finally:
        demo.kill()
    assert "Traceback" not in demo.text()
    assert (checkout / ".venv" / "bin" / "vigil").is_file()
    assert not (checkout / "vigil-demo").exists(), "the demo wrote into the working directory"


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with every file the README's commands name, and their environment."""
    require_tools("ffmpeg")
    work = tmp_path / "work"
    work.mkdir()
    clips, models = shared(shared_data_dir() / "clips"), shared(shared_models_dir())
    person = clips / "one-by-one-person-detection.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(shared(person)),
                    "-t", "6", "-c", "copy", str(work / "clip.mp4")], check=True)  # fmt: skip
    shutil.copy(work / "clip.mp4", work / "input.mp4")
    text = README.read_text(encoding="utf-8")
    rules = re.search(r"^```yaml\n(detect:.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert rules is not None, "the README's rules example is gone"
    (work / "rules.yaml").write_text(rules.group(1), encoding="utf-8")
    nano = shared(models / "yolox_nano.onnx")
    (work / "path" / "to").mkdir(parents=True)
    shutil.copy(nano, work / "path" / "to" / "yolox_s.onnx")  # any YOLOX-family ONNX file
    det = shared(shared_data_dir() / "mot15" / "TUD-Campus" / "det" / "det.txt")
    shutil.copy(det, work / "det.txt")
    env = user_env(tmp_path)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    cache = Path(env["VIGIL_CACHE_DIR"])
    cache.mkdir(parents=True)
    shutil.copy(nano, cache / "yolox_nano.onnx")  # what `vigil models pull yolox-nano` leaves
    # The README's camera configuration names hosts of the user's network; here the camera is
    # a file of the demo street, and the server listens on a free port.
    port = free_port()
    (work / "cameras.yaml").write_text(
        f"data_dir: {work / 'data'}\n"
        f"server: {{host: 127.0.0.1, port: {port}, secure_cookies: false}}\n"
        "detect: {model: motion}\n"
        f"cameras:\n  door:\n    sources:\n      - url: {work / 'clip.mp4'}\n        loop: true\n",
        encoding="utf-8",
    )
    env["TEST_PORT"] = str(port)
    return work, env


def check_after(command: str, work: Path, result: subprocess.CompletedProcess[str]) -> None:
    """What each command must have left behind, besides exiting 0."""
    out = result.stdout + result.stderr
    if command.startswith("vigil analyze clip.mp4 --config"):
        assert (work / "results" / "events.jsonl").is_file()
        assert (work / "results" / "annotated.mp4").stat().st_size > 0
    elif command.startswith("vigil track-mot"):
        assert (work / "tracks.txt").stat().st_size > 0
    elif command.startswith("vigil redact"):
        assert (work / "output.mp4").stat().st_size > 0
    elif command == "vigil models list":
        assert "yolox-nano" in out


@pytest.mark.slow
def test_every_readme_command(workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    blocks = code_blocks(README.read_text(encoding="utf-8"))
    lines = [line for block in blocks[1:] for line in block]  # the first: the test above
    ran: list[str] = []
    for line in lines:
        command = command_of(line)
        if command in NOT_RUN_HERE:
            continue
        if command.startswith("vigil serve"):
            serve_and_stop(line, work, env)
        else:
            password = "a fine password\n" * 2 if command.startswith("vigil user add") else ""
            result = run_line(line, work, env, stdin=password)
            assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, result.stderr
            check_after(command, work, result)
        ran.append(command)
    assert any(c.startswith("vigil user add") for c in ran)
    assert any(c.startswith("vigil serve") for c in ran)
    stale = set(NOT_RUN_HERE) - {command_of(line) for block in blocks for line in block}
    assert not stale, f"NOT_RUN_HERE names commands the README no longer has: {stale}"


def serve_and_stop(line: str, work: Path, env: dict[str, str]) -> None:
    """The README's server line: it serves the camera to the admin made before, then stops
    on Ctrl-C with exit status 0."""
    server = Demo(line, work, env, work / "serve.log")
    base = f"http://127.0.0.1:{env['TEST_PORT']}"
    try:
        server.wait_for_output(r"vigil serve: 1 camera", 120)
        with httpx.Client(base_url=base, timeout=30) as client:
            wait_until(lambda: client.get("/api/health").status_code == 200, 120,
                       "the API did not answer")  # fmt: skip
            login = client.post("/api/login", json={"name": "alice",
                                                    "password": "a fine password"})  # fmt: skip
            assert login.status_code == 200, login.text
            client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            wait_until(lambda: client.get("/api/cameras").json()[0]["online"], 120,
                       "the camera did not come online")  # fmt: skip
        assert server.interrupt(signal.SIGINT) == 0, server.text()[-4000:]
    finally:
        server.kill()
    assert "Traceback" not in server.text(), server.text()[-4000:]
