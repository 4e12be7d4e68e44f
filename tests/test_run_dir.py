"""A run directory is a transaction: claimed and checked before anything is written, one command
per directory, one writer at a time, records written atomically, and every refusal or fixable
failure a one-line error that leaves the directory as it was."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from d2m_nas.cli import main
from d2m_nas.errors import UserError
from d2m_nas.ranking import RESULT_COLUMNS
from d2m_nas.run_dir import RunDirectory
from distill.atomic import atomic_write, atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def rank_argv(table, out, sample=3, *extra):
    return ["rank", "--proxy", "params", "--sample", str(sample), "--ground-truth", "cifar10:test:200",
            "--ground-truth-file", str(table), "--bootstrap", "20", "--device", "cpu", "--out", str(out), *extra]


def contents(directory: Path) -> dict:
    """Every file under `directory` and its bytes (the lock file aside)."""
    return {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file() and p.name != ".lock"}


def one_line_error(capsys) -> str:
    """The error: the one line after any progress bar, with no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.splitlines()[-1].startswith("d2m-nas "), err
    return err.splitlines()[-1]


@pytest.fixture
def rank_run(tmp_path, table, capsys) -> Path:
    out = tmp_path / "rank-run"
    assert main(rank_argv(table, out)) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("argv", [
    ["search", "--proxy", "params", "--trials", "2", "--device", "cpu"],
    ["distill", "--dataset", "nosuch", "--device", "cpu"],
    ["generate", "--ipc", "1", "--device", "cpu"],
])
def test_another_commands_run_directory_is_refused_and_left_untouched(rank_run, argv, capsys):
    before = contents(rank_run)
    assert main([*argv, "--out", str(rank_run)]) == 2
    assert "is a `d2m-nas rank` run directory" in one_line_error(capsys)
    assert contents(rank_run) == before


def test_a_refused_resume_leaves_the_run_record_as_it_was(rank_run, table, capsys):
    before = contents(rank_run)
    assert main(rank_argv(table, rank_run, 3, "--ground-truth", "cifar10:test:12")) == 2
    assert "other settings" in one_line_error(capsys)
    assert contents(rank_run) == before  # config.yaml still names the ground truth of its results


def test_a_failed_command_leaves_no_stub_run_directory(tmp_path, isolated_data_root, capsys):
    out = tmp_path / "new"
    assert main(["distill", "--dataset", "nosuch", "--device", "cpu", "--out", str(out)]) == 2
    assert "nosuch" in one_line_error(capsys)
    assert not out.exists()


def test_a_directory_that_is_not_a_run_or_is_a_file_is_refused(tmp_path, table, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own file")
    assert main(rank_argv(table, mine)) == 2
    assert "holds no d2m-nas run" in one_line_error(capsys)
    assert contents(mine) == {Path("notes.txt"): b"my own file"}
    assert main(rank_argv(table, mine / "notes.txt")) == 2
    assert "is a file" in one_line_error(capsys)
    assert main(rank_argv(table, mine / "notes.txt" / "run")) == 2  # cannot even be created
    assert "cannot write the run directory" in one_line_error(capsys)


def test_a_second_writer_is_refused_while_search_workers_share(tmp_path, rank_run, table, capsys):
    holder = RunDirectory(rank_run, "rank")  # as another rank process would hold it
    before = contents(rank_run)
    try:
        assert main(rank_argv(table, rank_run)) == 2
        assert "another d2m-nas process is writing" in one_line_error(capsys)
        assert contents(rank_run) == before
    finally:
        holder.release()
    study = tmp_path / "study"
    first = RunDirectory(study, "search", shared=True)
    second = RunDirectory(study, "search", shared=True)  # workers of one study
    with pytest.raises(UserError, match="another d2m-nas process"):
        RunDirectory(study, "search")
    first.release(), second.release()


def test_rank_config_yaml_reloads_and_checks_its_values(rank_run, tmp_path, capsys):
    assert main(["rank", "--config", str(rank_run / "config.yaml")]) == 0  # the run's own record: a resume
    assert len(pd.read_csv(rank_run / "results.csv")) == 3
    capsys.readouterr()
    assert main(["search", "--config", str(rank_run / "config.yaml")]) == 2
    assert "written by `d2m-nas rank`" in one_line_error(capsys)
    for key, value, expected in [("seed", True, "a whole number"), ("sample", 2.5, "a whole number"),
                                 ("bootstrap", [1, 2], "a whole number"), ("proxy", ["params"], "a single value"),
                                 ("download", "yes", "true or false"), ("ensemble", "a=b+c", "a list of strings"),
                                 ("checkpoints", [0.5, "x"], "numbers > 0 separated by commas")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({key: value}))
        code = main(["rank", "--config", str(bad), "--out", str(tmp_path / "never")])
        err = one_line_error(capsys)
        assert code == 2 and f"{key} must be {expected}" in err and not (tmp_path / "never").exists()


def test_atomic_write_keeps_the_old_file_and_no_temp_on_failure(tmp_path):
    target = atomic_write_text(tmp_path / "record.json", "old")

    def torn(handle):
        handle.write(b"half")
        try:
            raise OSError(27, "File too large")
        except OSError:
            raise RuntimeError("unexpected pos 704 vs 598")  # how torch.save reports it

    with pytest.raises(OSError, match="File too large"):
        atomic_write(target, torn)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["record.json"]


def test_a_write_refused_mid_run_is_one_line_and_keeps_the_results(rank_run, table, monkeypatch, capsys):
    import d2m_nas.ranking as ranking

    def read_only_summary(path, text):
        if path.name == "summary.json":
            raise PermissionError(13, "Permission denied", str(path))  # the directory turned read-only
        return atomic_write_text(path, text)

    monkeypatch.setattr(ranking, "atomic_write_text", read_only_summary)
    before = contents(rank_run)
    assert main(rank_argv(table, rank_run, 5)) == 2
    err = one_line_error(capsys)
    assert "Permission denied" in err and "make it writable" in err
    assert len(pd.read_csv(rank_run / "results.csv")) == 5  # the new rows were kept
    assert contents(rank_run)[Path("summary.json")] == before[Path("summary.json")]


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from d2m_nas.cli import main
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.exit(main(sys.argv[2:]))
""")


def test_a_full_disk_is_one_line_keeps_every_record_and_resumes(rank_run, table, tmp_path):
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    before = contents(rank_run)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    limit = len(before[Path("results.csv")]) + 10  # the run record fits; the next row does not
    done = subprocess.run([sys.executable, str(script), str(limit), *rank_argv(table, rank_run, 4)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert last.startswith("d2m-nas rank: error: File too large") and "free some disk space" in last, last
    assert contents(rank_run)[Path("summary.json")] == before[Path("summary.json")]
    assert not [p for p in rank_run.iterdir() if p.name.endswith(".tmp")]
    assert main(rank_argv(table, rank_run, 4)) == 0  # space again: resumes, nothing lost or doubled
    results = pd.read_csv(rank_run / "results.csv")
    assert len(results) == 4 and not results.duplicated(["arch", "proxy"]).any()


def test_sigterm_stops_cleanly_like_ctrl_c(table, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "d2m_nas", *rank_argv(table, out, 15000)], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "results.csv").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "terminated; rerun the same command to resume" in err, err[-2000:]
    assert (out / "config.yaml").is_file()  # a stopped run keeps its record, to be resumed


@pytest.mark.parametrize("damage, fragment", [
    (lambda text: text.replace(",params,", ",params,abc,x", 1), f"line 2 has {len(RESULT_COLUMNS) + 1} fields where the header has {len(RESULT_COLUMNS)}"),
    (lambda text: re.sub(",params,[^,]*,", ",params,abc,", text, count=1), "line 2: score 'abc' is not a number"),
    (lambda text: text + 'garbage,"unclosed\n', "line 5 has 2 fields"),
])
def test_a_damaged_results_file_is_refused_on_resume_and_left_as_it_is(rank_run, table, damage, fragment, capsys):
    results = rank_run / "results.csv"
    results.write_text(damage(results.read_text()))
    before = contents(rank_run)
    assert main(rank_argv(table, rank_run)) == 2
    assert fragment in one_line_error(capsys)
    assert contents(rank_run) == before


def test_versions_records_the_sha256_of_the_data_files_a_run_read(tmp_path, isolated_data_root, table):
    import hashlib
    import shutil

    from tests.test_data_sources import write_npz

    write_npz(isolated_data_root / "cifar10" / "cifar10.npz")
    truth = isolated_data_root / "nb201" / "nb201_ground_truth.csv"
    truth.parent.mkdir()
    shutil.copy(table, truth)
    out = tmp_path / "run"
    assert main(["rank", "--proxy", "naswot", "--sample", "3", "--ground-truth", "cifar10:test:200",
                 "--val-per-class", "1", "--batch-size", "4", "--bootstrap", "0", "--device", "cpu",
                 "--out", str(out)]) == 0
    files = json.loads((out / "versions.json").read_text())["data_files"]
    for path in (isolated_data_root / "cifar10" / "cifar10.npz", truth):
        assert files[str(path.resolve())]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["rank", "--proxy", "params", "--sample", "3", "--ground-truth", "cifar10:test:200",
                 "--bootstrap", "0", "--device", "cpu", "--out", str(tmp_path / "other")]) == 0
    assert list(json.loads((tmp_path / "other" / "versions.json").read_text())["data_files"]) == [str(truth.resolve())]
