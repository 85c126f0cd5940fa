"""Files and paths on a shared lab server: private modes, no symlink or foreign folder followed,
session ids that cannot leave the data dir, no key from a base URL, no export onto a log."""

from __future__ import annotations

import os
import stat

import pytest
from faults import IS_ROOT
from llm_support import FAKE_KEY, srv  # noqa: F401
from testmeters import TokenMeter

from nbcost.config import load_settings
from nbcost.ledger import Ledger, iso_utc, read_log
from nbcost.session import Session


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_logs_are_0600_in_0700_folders(nbcost_home):
    session = Session(load_settings(), meters=[])
    session.close()
    assert mode(session.ledger_path) == 0o600
    assert mode(session.ledger_path.parent) == 0o700  # spend/<date>
    assert mode(session.ledger_path.parent.parent) == 0o700  # spend
    assert mode(nbcost_home) == 0o700


def today_folder(home):
    import time

    return home / "spend" / iso_utc(time.time())[:10]


def test_a_planted_date_folder_symlink_is_refused_not_followed(nbcost_home, tmp_path, capsys):
    elsewhere = tmp_path / "victim"
    elsewhere.mkdir()
    (nbcost_home / "spend").mkdir(parents=True)
    today_folder(nbcost_home).symlink_to(elsewhere)
    session = Session(load_settings(), meters=[TokenMeter()])
    session.meters["tokens"].call("m", 1000)
    session.close()
    err = capsys.readouterr().err
    assert "symbolic link" in err and "NBCOST_HOME" in err and "lost" in err
    assert list(elsewhere.iterdir()) == []
    assert session.total_usd > 0  # still recorded, in memory


def test_a_planted_log_symlink_is_refused_not_appended_to(tmp_path):
    target = tmp_path / "someone-elses-file"
    target.write_text("precious\n")
    log = tmp_path / "spend" / "s.jsonl"
    log.parent.mkdir()
    log.symlink_to(target)
    ledger = Ledger(log, {}, root=tmp_path)
    ledger.append("llm_call", {})
    reports = ledger.take_reports()
    ledger.close()
    assert target.read_text() == "precious\n"
    assert any("symbolic link" in r for r in reports)


def test_a_planted_log_symlink_with_the_sessions_id_is_never_its_log(nbcost_home, tmp_path,
                                                                      monkeypatch):
    target = tmp_path / "someone-elses-file"
    target.write_text("precious\n")
    today_folder(nbcost_home).mkdir(parents=True)
    (today_folder(nbcost_home) / "run1.jsonl").symlink_to(target)
    monkeypatch.setenv("NBCOST_SESSION_ID", "run1")
    session = Session(load_settings(), meters=[])
    session.close()
    assert target.read_text() == "precious\n"
    assert session.id.startswith("run1-") and session.ledger_path.is_file()


@pytest.mark.skipif(not IS_ROOT, reason="giving a folder to another user needs root")
def test_a_folder_owned_by_another_user_is_refused(nbcost_home, capsys):
    spend = nbcost_home / "spend"
    spend.mkdir(parents=True)
    os.chown(spend, 54321, 54321)
    session = Session(load_settings(), meters=[])
    session.close()
    err = capsys.readouterr().err
    assert "belongs to another user (uid 54321)" in err and "folder of your own" in err
    assert not today_folder(nbcost_home).exists()


@pytest.mark.parametrize("bad", ["../../x", "/etc/passwd", "a/b", ".hidden", "-rf", "x" * 200,
                                 "sp ace"])
def test_a_session_id_that_is_not_a_file_name_is_replaced(nbcost_home, tmp_path, monkeypatch,
                                                          capsys, bad):
    monkeypatch.setenv("NBCOST_SESSION_ID", bad)
    session = Session(load_settings(), meters=[])
    session.close()
    assert "not usable as a file name" in capsys.readouterr().err
    assert session.ledger_path.parent.parent.parent == nbcost_home
    assert session.ledger_path.resolve().is_relative_to(nbcost_home.resolve())
    assert not (tmp_path.parent / "x").exists() and session.id != bad


def test_a_key_in_the_base_url_path_is_never_stored(shell_session, srv):
    import openai

    base = srv.base_url("openai").split("/s/")[0]  # the default scenario answers any path
    secret = "sk-live-SECRET0123456789"
    client = openai.OpenAI(base_url=f"{base}/{secret}/v1", api_key=FAKE_KEY, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": "hi"}])
    shell_session.flush()
    text = shell_session.ledger_path.read_text()
    assert secret not in text and FAKE_KEY not in text
    call = [e for e in read_log(shell_session.ledger_path).events if e["event"] == "llm_call"][-1]
    assert call["attributes"]["base_url"] == base  # scheme://host:port only


@pytest.fixture
def shell_session():
    """A session with the LLM meter patched in (what %load_ext does), as the process's own."""
    from nbcost import api

    session = Session(load_settings())
    old = api.set_session(session)
    yield session
    api.set_session(old)
    session.close()
