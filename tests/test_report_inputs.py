"""What ``nbcost report`` reads: logs, exports and notebooks alike; each window once; killed
sessions rebuilt; one key per notebook; damaged lines skipped and counted; digests reused."""

from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal

import nbformat
import pytest
from report_support import Cell, report_json, run_session, session_total

import nbcost.testing
from nbcost.cli import main
from nbcost.export import export_rows
from nbcost.ledger import read_log
from nbcost.report import build, load_spend
from nbcost.rows import rows_from_events, session_totals
from nbcost.run_cells import compact_from_event

ZERO = Decimal(0)


@pytest.fixture(scope="module")
def srv():
    with nbcost.testing.llm_server() as server:
        yield server


@pytest.fixture(scope="module")
def log(srv, tmp_path_factory):
    """One whole session with a GPU and LLM calls in two cells."""
    return run_session(srv, tmp_path_factory.mktemp("one"), [
        Cell([("gpt-4o-mini", 1000, 50, 400)], {"exp": "a"}, label="embed"),
        Cell([("gpt-4o", 500, 20, 0)])])


def total_of(*paths, **options):
    with load_spend([str(p) for p in paths], cache=False, **options) as spend:
        return build(spend, "notebook"), spend.skipped


def notebook_of(log, path, notebook_id=None):
    """The notebook ``nbcost run`` would save for this session: each cell's compact record."""
    ends = [e for e in read_log(log).events if e["event"] == "cell_end"]
    nb = nbformat.v4.new_notebook()
    nb.metadata["nbcost"] = {"notebook_id": notebook_id, "session_id": ends[0]["session_id"]}
    nb.cells = [nbformat.v4.new_code_cell("x = 1", execution_count=e["execution_count"],
                                          metadata={"nbcost": compact_from_event(e)}) for e in ends]
    nb.cells.append(nbformat.v4.new_code_cell("never ran"))
    nbformat.write(nb, path)
    return path


def test_a_killed_session_is_rebuilt_as_docs_schema_says(srv, tmp_path):
    killed = run_session(srv, tmp_path, [Cell([("gpt-4o-mini", 200, 20, 0)]),
                                         Cell([("gpt-4o", 700, 20, 0)])], kill_in_last=True)
    events = read_log(killed).events
    assert not any(e["event"] == "session_end" for e in events)
    # docs/schema.md: usage events summed, plus each cumulative meter's last checkpoint.
    rebuilt = sum((Decimal(m["cost_usd"]) for m in session_totals(events).values()), ZERO)
    report, _ = total_of(killed)
    assert report.total["cost_usd"] == rebuilt > 0
    with load_spend([killed], cache=False) as spend:
        (status, cost), = spend.sql("SELECT status, cost_usd FROM windows WHERE status <> 'ok'").fetchall()
    last_call = [e for e in events if e["event"] == "llm_call"][-1]
    assert status == "interrupted" and cost == Decimal(last_call["cost_usd"])


def test_a_log_its_exports_and_its_notebook_count_once(log, tmp_path):
    rows = rows_from_events(read_log(log).events)
    paths = [export_rows(rows, tmp_path / f"export.{fmt}") for fmt in ("csv", "jsonl", "parquet")]
    notebook = notebook_of(log, tmp_path / "a.ipynb")
    expected = session_total(log)
    for inputs in ([log], [log, *paths, notebook], [*paths], [paths[0], notebook], [log, log.parent]):
        report, skipped = total_of(*inputs)
        assert report.total["cost_usd"] == expected, inputs
        assert report.total["cells"] == 2, inputs
        assert skipped.total == 0
    # The notebook alone has its cells' records, not the time between them.
    alone, _ = total_of(notebook)
    cells = [e for e in read_log(log).events if e["event"] == "cell_end"]
    assert alone.total["cost_usd"] == sum(Decimal(e["cost_usd"]) for e in cells) < expected


def test_a_notebook_shows_its_cells_without_a_record(log, tmp_path):
    notebook = notebook_of(log, tmp_path / "a.ipynb")
    with load_spend([notebook], cache=False) as spend:
        cells = spend.sql("SELECT has_record FROM notebook_cells ORDER BY cell_index").fetchall()
        keys = spend.sql("SELECT DISTINCT notebook_key FROM notebook_cells").fetchall()
    assert cells == [(True,), (True,), (False,)] and len(keys) == 1


def test_absolute_and_relative_paths_of_one_notebook_are_one_key(srv, tmp_path):
    home = tmp_path / "logs"
    lab = run_session(srv, home, [Cell([("gpt-4o-mini", 100, 10, 0)])], gpu=False,
                      notebook_path="/home/ann/work/a.ipynb")  # JupyterLab: absolute
    run = run_session(srv, home, [Cell([("gpt-4o-mini", 200, 10, 0)])], gpu=False,
                      notebook_path="work/a.ipynb", notebook_id="nb-1")  # nbcost run: relative
    other = run_session(srv, home, [Cell([("gpt-4o", 100, 10, 0)])], gpu=False, user="bob",
                        notebook_path="/home/bob/elsewhere/a.ipynb")
    with load_spend([home], cache=False) as spend:
        rows = {r["keys"]["notebook"]: r["cost_usd"] for r in build(spend, "notebook").rows}
        keys = spend.sql("SELECT DISTINCT notebook_key FROM windows").fetchall()
    assert len(keys) == 2
    ann = next(path for path in rows if "ann" in path or path == "work/a.ipynb")
    assert rows[ann] == session_total(lab) + session_total(run)
    assert rows["/home/bob/elsewhere/a.ipynb"] == session_total(other)


DAMAGED = [
    b'{"schema":1,"id":"x1","event":"llm_call","ts":"2026-11-27T09:00:00Z","session_id":"S","cost_usd":"1\xff"}',
    b'{"schema":"1","id":"x2","event":"llm_call","ts":"2026-11-27T09:00:00Z","session_id":"S","meter":"llm","quantities":{},"cost_usd":"5"}',
    b'{"schema":1,"id":"x3","event":null,"ts":"2026-11-27T09:00:00Z","session_id":"S"}',
    b'{"schema":1,"id":"x4","event":"llm_call","ts":"2026-11-27T09:00:00Z","session_id":"S","meter":"llm","quantities":{},"cost_usd":"abc"}',
    b'{"schema":1,"id":"x5","event":"llm_call","ts":"2026-11-27T09:00:00Z","session_id":"S","meter":"llm","quantities":{},"cost_usd":"NaN"}',
    b'{"schema":1,"id":"x6","event":"llm_call","ts":"2026-11-27T09:00:00Z","session_id":"S","meter":"llm","quantities":{},"cost_usd":{"usd":5}}',
    b'{"schema":1,"id":"x7","event":"llm_call","ts":"2026-11-27T09:00:00","session_id":"S","meter":"llm","quantities":{},"cost_usd":"5"}',
    b'{"schema":1,"id":"x8","event":"cell_start","ts":"2026-11-27T09:00:00Z","session_id":"S","window_id":"w9","tags":' + b'{"a":' * 5000 + b'1' + b'}' * 5001,
    b'[' * 100000 + b']' * 100000,
    b'{"schema":1,"id":"x9","event":"cell_start","ts":"2026-11-27T09:00:00Z","session_id":"S","window_id":"w9","started_at":"garbage"}',
    b'{"schema":2,"id":"x10","event":"llm_call","ts":"2026-11-27T09:00:00Z","session_id":"S"}',
]


def test_damaged_lines_are_skipped_counted_and_named(log, tmp_path, capsys):
    lines = log.read_bytes().splitlines()
    session = json.loads(lines[0])["session_id"]
    damaged = [line.replace(b'"S"', f'"{session}"'.encode()) for line in DAMAGED]
    broken = tmp_path / "broken.jsonl"
    body = [lines[0], *damaged, *lines[1:]]
    broken.write_bytes(b"\n".join(body) + b'\n{"schema":1,"id":"torn","ev')
    report, skipped = total_of(broken)
    assert report.total["cost_usd"] == session_total(log)  # nothing else lost
    assert skipped.counts["lines"] == [len(DAMAGED) + 1, len(body) + 1]
    summary = skipped.summary()
    assert summary.startswith(f"{len(DAMAGED) + 1} of {len(body) + 1:,} lines skipped: ")
    for number in range(2, 7):  # the first few, by line number
        assert f"{broken}:{number}: " in summary
    assert "not UTF-8" in summary and '"schema" must be the number 1' in summary
    assert "and 7 more" in summary
    code, out, err = report_json(broken, capsys=capsys)
    assert code == 0 and Decimal(out["total_usd"]) == session_total(log)
    assert err.count("\n") == 1 and "lines skipped" in err


def test_every_kind_of_damage_has_its_reason(log, tmp_path):
    from nbcost.report.checks import Skipped
    from nbcost.report.logs import read_log_file

    lines = log.read_bytes().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join([lines[0], *DAMAGED]) + b"\n")
    skipped = Skipped()
    read_log_file(str(broken), skipped)
    skipped.examples.clear()
    reasons = []
    for number, line in enumerate(DAMAGED, start=2):
        one = Skipped()
        single = tmp_path / f"{number}.jsonl"
        single.write_bytes(line + b"\n")
        read_log_file(str(single), one)
        reasons.append(one.examples[0].split(": ", 1)[1])
    assert reasons[0].startswith("not UTF-8 text (byte ")
    assert reasons[1:] == ['"schema" must be the number 1, not "1"',
                       'not an nbcost event ("event" is null)',
                       'money must be a decimal string, not "abc"',
                       'money must be a decimal string, not "NaN"',
                       'money must be a decimal string, not {"usd": 5}',
                       'ts: timestamp "2026-11-27T09:00:00" is not ISO 8601 with a zone (…Z)',
                       "nested too deeply", "nested too deeply",
                       'started_at: timestamp "garbage" is not ISO 8601 with a zone (…Z)',
                       "schema 2 is newer than this nbcost reads (1): upgrade nbcost"]


def test_the_fast_reader_and_the_line_by_line_reader_agree(log, tmp_path):
    """A clean log goes through DuckDB; one with a bad line is read again in Python."""
    flagged = tmp_path / "flagged.jsonl"
    flagged.write_bytes(log.read_bytes() + b"not json\n")
    columns = "kind, window_id, cost_usd, llm_cost_usd, gpu_cost_usd, gpu_held_s, llm_calls, " \
              "llm_input_tokens, llm_cache_read_tokens, gpu_idle_between_usd, gpu_stall_usd, " \
              "gpu_underfill_usd, gpu_devices, status, start, tags"
    seen = []
    for path in (log, flagged):
        with load_spend([path], cache=False) as spend:
            rows = spend.sql(f"SELECT {columns}, llm_models FROM windows ORDER BY start, kind").fetchall()
            seen.append([r[:-2] + (json.loads(r[-2]), json.loads(r[-1]) if r[-1] else None)
                         for r in rows])
            assert spend.skipped.total == (path == flagged)
    assert seen[0] == seen[1]


def test_nothing_readable_is_an_error_that_says_so(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\xff\xfe\n{oops\n")
    other = tmp_path / "sales.csv"
    other.write_text("region,amount\neu,5\n")
    for paths in ([empty], [garbage], [other], [garbage, other]):
        assert main(["report", *map(str, paths)]) != 0
        err = capsys.readouterr().err
        assert "nothing readable" in err and "Traceback" not in err, err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no spend log at" in capsys.readouterr().err


def test_folders_globs_and_hidden_folders(log, tmp_path):
    tree = tmp_path / "team" / "ann" / "2026-11"
    tree.mkdir(parents=True)
    shutil.copy(log, tree / log.name)
    hidden = tmp_path / "team" / ".ipynb_checkpoints"
    hidden.mkdir()
    (hidden / "junk.jsonl").write_text("not json\n")
    for given in (tmp_path / "team", str(tmp_path / "team" / "**" / "*.jsonl")):
        report, skipped = total_of(given)
        assert report.total["cost_usd"] == session_total(log) and skipped.total == 0


def test_an_unchanged_log_is_read_from_its_digest_and_a_grown_one_again(log, tmp_path, monkeypatch):
    monkeypatch.setenv("NBCOST_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "log.jsonl"
    shutil.copy(log, copy)
    with load_spend([copy]) as spend:
        first = build(spend, "user").total["cost_usd"]
    assert first == session_total(log)
    assert list((tmp_path / "cache").glob("k=*/meta.json"))
    # Same size and time, other content: the digest answers (the file was not parsed again).
    stat = copy.stat()
    data = copy.read_bytes()
    copy.write_bytes(data.replace(b'"user":"ann"', b'"user":"zed"'))
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with load_spend([copy]) as spend:
        assert {r["keys"]["user"] for r in build(spend, "user").rows} == {"ann"}
    # Grown (a live session's log): read again.
    with open(copy, "ab") as out:
        out.write(b"\n")
    with load_spend([copy]) as spend:
        assert {r["keys"]["user"] for r in build(spend, "user").rows} == {"zed"}


def test_llm_spend_outside_cells_is_the_model_not_recorded_row(srv, tmp_path):
    import openai

    from nbcost.config import Settings
    from nbcost.meters.llm import LlmMeter
    from nbcost.session import Session

    session = Session(settings=Settings(data_dir=tmp_path, user="ann"), meters=[LlmMeter()],
                      notebook={"notebook_path": "a.ipynb", "notebook_id": None})
    client = openai.OpenAI(base_url=srv.base_url("openai", input_tokens=900, output_tokens=9),
                           api_key="sk-test", max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        cell = session.open_window("cell", execution_count=1)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        session.close_window(cell.id)
    finally:
        session.close()
    calls = [e for e in read_log(session.ledger_path).events if e["event"] == "llm_call"]
    with load_spend([session.ledger_path], cache=False) as spend:
        report = build(spend, "model")
    rows = {r["keys"]["model"]: r["cost_usd"] for r in report.rows}
    assert rows["(model not recorded)"] == Decimal(calls[0]["cost_usd"])  # the call before the cell
    assert rows["gpt-4o-mini"] == Decimal(calls[1]["cost_usd"])
    assert sum(rows.values()) == report.total["cost_usd"] == session_total(session.ledger_path)


@pytest.fixture
def offline_s3(tmp_path, monkeypatch):
    """s3fs pointed at a loopback port nothing listens on, without AWS credentials."""
    s3fs = pytest.importorskip("s3fs")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none")),
                        ("AWS_CONFIG_FILE", str(tmp_path / "none")),
                        ("AWS_EC2_METADATA_DISABLED", "true"), ("AWS_MAX_ATTEMPTS", "1"),
                        ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9")):
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield monkeypatch
    s3fs.S3FileSystem.clear_instance_cache()


def test_a_bucket_without_credentials_or_network_says_what_to_do(offline_s3, tmp_path, capsys):
    for said in ("no AWS credentials", "cannot reach the S3 endpoint"):
        for argv in (["report", "s3://bucket/prefix/"],
                     ["audit", "s3://bucket/prefix/", "-o", str(tmp_path / "a.html")]):
            assert main(argv) == 2, (said, argv)
            err = capsys.readouterr().err
            assert f"cannot read s3://bucket/prefix/: {said}" in err, err
            assert "internal error" not in err and err.count("\n") == 1, err
        offline_s3.setenv("AWS_ACCESS_KEY_ID", "testing")  # credentials, and no endpoint
        offline_s3.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
    assert not (tmp_path / "a.html").exists()
