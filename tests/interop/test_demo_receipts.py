"""Receipts written by `agentgate demo`, checked by Go's reference packages."""

from pathlib import Path

import pytest

pytest.importorskip("agentdojo", reason="install the agentdojo extra: "
                    "pip install -e '.[agentdojo]' (make test does this)")

from click.testing import CliRunner  # noqa: E402

from enforcement.evaluation.cli import demo  # noqa: E402
from tests.interop.conftest import run_go  # noqa: E402


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(demo, ["--out", str(out), "--suite", "banking"])
    assert result.exit_code == 0, result.output
    return out


def test_go_accepts_demo_receipts(checkreceipt, demo_output, tmp_path):
    key = next((demo_output / "keys").glob("*.pub")).read_text().strip()
    receipts = sorted((demo_output / "receipts").glob("*.tlog-proof"))
    # The first, a decision in the middle, and the last receipt the run wrote.
    chosen = [receipts[0], receipts[len(receipts) // 2], receipts[-1]]

    for path in chosen:
        result = run_go(checkreceipt, key, path.read_text(), tmp_path)

        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith('OK origin="agentgate.example/demo"')


def test_go_rejects_demo_receipt_with_other_entry(checkreceipt, demo_output,
                                                  tmp_path):
    key = next((demo_output / "keys").glob("*.pub")).read_text().strip()
    receipts = sorted((demo_output / "receipts").glob("*.tlog-proof"))
    first = receipts[1].read_text().split("\n")
    second = receipts[2].read_text().split("\n")
    first[1] = second[1]  # the extra line: another record's entry bytes

    result = run_go(checkreceipt, key, "\n".join(first), tmp_path)

    assert result.returncode == 1
    assert result.stdout.startswith("FAIL")
