"""``nbcost report s3://...`` against a real S3-protocol server on loopback (moto's standalone
server), through s3fs. Skipped where moto's server or s3fs is not installed."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
from report_support import Cell, report_json, run_session, session_total

import nbcost.testing
from nbcost.export import export_rows
from nbcost.ledger import read_log
from nbcost.rows import rows_from_events

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")


@pytest.fixture
def bucket(monkeypatch):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", endpoint)):
        monkeypatch.setenv(name, value)
    import s3fs

    # No s3fs instance from another test's endpoint (each fsspec class caches its own).
    s3fs.S3FileSystem.clear_instance_cache()
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="team-spend")
    try:
        yield client
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()


def test_a_shared_bucket_of_logs_and_exports(bucket, tmp_path, capsys):
    with nbcost.testing.llm_server() as srv:
        one = run_session(srv, tmp_path / "a", [Cell([("gpt-4o-mini", 1000, 50, 0)])], user="ann")
        two = run_session(srv, tmp_path / "b", [Cell([("gpt-4o", 500, 20, 0)])], user="bob",
                          gpu=False)
    export = export_rows(rows_from_events(read_log(two).events), tmp_path / "bob.parquet")
    bucket.upload_file(str(one), "team-spend", f"spend/ann/{one.name}")
    bucket.upload_file(str(two), "team-spend", f"spend/bob/{two.name}")
    bucket.upload_file(str(export), "team-spend", "exports/bob.parquet")
    expected = session_total(one) + session_total(two)

    code, out, err = report_json("s3://team-spend/", "--by", "user", capsys=capsys)
    assert code == 0, err
    assert Decimal(out["total_usd"]) == expected  # bob's log and export count once
    assert {g["key"]: Decimal(g["cost_usd"]) for g in out["groups"]} == {
        "ann": session_total(one), "bob": session_total(two)}

    code, out, _ = report_json("s3://team-spend/spend/*/*.jsonl", "--no-cache", capsys=capsys)
    assert code == 0 and Decimal(out["total_usd"]) == expected
    shutil.rmtree(tmp_path / "a")
    code, out, err = report_json("s3://team-spend/nothing-here/", capsys=capsys)
    assert code == 2 and "nothing at s3://team-spend/nothing-here/" in err


def test_report_local_reads_a_bucket_with_its_filters(bucket, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from transformers import GPT2Config, GPT2LMHeadModel

    from nbcost.cli import main
    from nbcost.config import Settings
    from nbcost.meters.llm import LlmMeter
    from nbcost.session import Session

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100,
                                       n_positions=64, eos_token_id=99)).eval()
    for notebook, new_tokens in (("a.ipynb", 4), ("b.ipynb", 6)):
        session = Session(settings=Settings(data_dir=tmp_path / notebook, user="ann"),
                          meters=[LlmMeter()],
                          notebook={"notebook_path": notebook, "notebook_id": None})
        try:
            info = session.open_window("cell", cell_id="c1", execution_count=1)
            model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens)
            session.close_window(info.id)
            session.flush()
        finally:
            session.close()
        bucket.upload_file(str(session.ledger_path), "team-spend",
                           f"spend/{session.ledger_path.name}")
    capsys.readouterr()
    assert main(["report", "s3://team-spend/", "--local", "--notebook", "b.ipynb"]) == 0
    out = capsys.readouterr().out
    assert "gpt2 (self-hosted): 1 generation, 3 input and 6 output tokens" in out
    assert main(["report", "s3://team-spend/", "--local"]) == 0
    assert "gpt2 (self-hosted): 2 generations, 6 input and 10 output tokens" in (
        capsys.readouterr().out)
