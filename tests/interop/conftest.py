"""The Go reference checker, built once per test session.

The Go program in go/checkreceipt opens a receipt's checkpoint with
golang.org/x/mod/sumdb/note and checks inclusion with tlog.CheckRecord. It is
built from the Debian packages golang-go and golang-golang-x-mod-dev, in
GOPATH mode, so no network is needed.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOPATH = Path("/usr/share/gocode")
GO_SOURCES = GOPATH / "src/golang.org/x/mod/sumdb"
PROGRAM = Path(__file__).parent / "go" / "checkreceipt"
INSTALL_HINT = "apt-get install golang-go golang-golang-x-mod-dev"


@pytest.fixture(scope="session")
def checkreceipt(tmp_path_factory) -> Path:
    """Build the Go checker into a temporary folder and return its path."""
    go = shutil.which("go")
    sources = [GO_SOURCES / "note", GO_SOURCES / "tlog"]
    if go is None or not all(path.is_dir() for path in sources):
        pytest.skip(
            f"Go or the golang.org/x/mod sources are missing; install them with "
            f"`{INSTALL_HINT}`"
        )

    build = tmp_path_factory.mktemp("go-build")
    binary = build / "checkreceipt"
    environment = {
        **os.environ,
        "GOPATH": str(GOPATH),
        "GO111MODULE": "off",
        "GOCACHE": str(build / "cache"),
        "GOFLAGS": "",
        "HOME": str(build),
    }
    result = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=PROGRAM,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"go build failed:\n{result.stderr}"
    return binary


def run_go(binary: Path, key: str, receipt: str, tmp_path: Path):
    """Run the Go checker on one receipt and return the completed process."""
    path = tmp_path / "receipt.tlog-proof"
    path.write_text(receipt, encoding="utf-8")
    return subprocess.run(
        [str(binary), key, str(path)], capture_output=True, text=True, timeout=60
    )
