"""The command line itself: fast start, one-line errors, quiet on a closed pipe, truthful Ctrl-C."""

import subprocess
import sys

import pytest

import genrec.commands.prepare
from genrec.cli import build_parser, main
from genrec.core.limits import MAX_TOP_K

HEAVY = ("torch", "transformers", "pandas", "sentence_transformers", "pyarrow", "fastapi")


def test_building_the_parser_imports_no_heavy_library():
    """`genrec --help` and argument errors must not wait for torch (3.5-9 s on a busy machine)."""
    probe = ("import sys, genrec.cli; genrec.cli.build_parser(); "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_the_tokenizer_names_the_cli_offers_are_the_registrys():
    from genrec.tokenizer.names import METHODS
    from genrec.tokenizer.registry import TOKENIZERS

    assert tuple(TOKENIZERS) == METHODS


@pytest.mark.parametrize("argv, message", [
    (["recommend", "--top-k", "100000"], f"argument --top-k: expected 1..{MAX_TOP_K}"),
    (["recommend", "--top-k", "0"], "argument --top-k: expected 1.."),
    (["recommend", "--beams", "0"], "argument --beams: expected 1.."),
    (["recommend", "--top-k", "ten"], "expected a whole number, got 'ten'"),
    (["recommend", "--include-seen", "--exclude-seen"], "not allowed with argument"),
    (["evaluate", "--beams", "5"], "argument --beams: expected 30.."),
    (["train-tokenizer", "--method", "nope"], "invalid choice: 'nope'"),
    (["nope"], "invalid choice: 'nope'"),
])
def test_bad_arguments_are_one_line_errors_with_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err
    assert captured.err.startswith("genrec") and ": error: " in captured.err
    assert captured.out == ""


def test_help_exits_0():
    assert main(["--help"]) == 0
    assert main(["recommend", "--help"]) == 0


def test_seen_items_are_left_out_unless_asked():
    parser = build_parser()
    assert parser.parse_args(["recommend", "--user", "1"]).exclude_seen is True
    assert parser.parse_args(["recommend", "--user", "1", "--include-seen"]).exclude_seen is False
    assert parser.parse_args(["recommend", "--all", "--out", "x.parquet"]).exclude_seen is True


def _interrupt(args):
    raise KeyboardInterrupt


@pytest.mark.parametrize("argv, says", [
    (["prepare", "demo"], "nothing half-written"),
    (["train-recommender"], "resume from the last checkpoint"),
    (["add-items", "--items", "x.csv"], "items already added are skipped"),
])
def test_ctrl_c_says_what_a_rerun_does_for_that_command(argv, says, monkeypatch, capsys):
    import genrec.commands.catalog
    import genrec.commands.recommender

    for module, name in ((genrec.commands.prepare, "_run"), (genrec.commands.recommender, "_train"),
                         (genrec.commands.catalog, "_run")):
        monkeypatch.setattr(module, name, _interrupt)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    if argv[0] == "prepare":
        assert "saved" not in err  # nothing was saved: it must not claim so


def test_a_closed_pipe_ends_quietly():
    """`genrec ... | head -1`: no BrokenPipeError traceback once the reader has gone."""
    child = ("import genrec.commands.prepare as p, genrec.cli as c, sys\n"
             "def flood(args):\n"
             "    for i in range(200000):\n"
             "        print('line', i)\n"
             "p._run = flood\n"
             "sys.exit(c.main(['prepare', 'demo']))\n")
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141


def test_ctrl_c_says_what_a_rerun_does():
    from genrec.cli import NOT_RESUMABLE

    parser = build_parser()
    resumed = parser.parse_args(["recommend", "--all", "--out", "recs.parquet"]).interrupted
    assert "continues after the users already written" in resumed
    assert "resume from the last checkpoint" in parser.parse_args(["train-recommender"]).interrupted
    assert getattr(parser.parse_args(["embed"]), "interrupted", NOT_RESUMABLE) == NOT_RESUMABLE
