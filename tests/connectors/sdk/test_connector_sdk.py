"""The connector SDK's pure parts: configuration, discovery, backoff, event ids."""

from __future__ import annotations

import logging
import random
import threading
from pathlib import Path

import pytest

from connectors.sdk import config_file, registry
from connectors.sdk.errors import ConfigError, PartnerUnavailable
from connectors.sdk.retry import Backoff, Stopped, retrying
from connectors.sdk.runner import event_id_of

GOOD = """
[kafka]
bootstrap = "127.0.0.1:19092"
topic_prefix = "t."

[connectors.master]
kind = "pension-master"
dsn = "postgresql://sync@master/pension"
password = { env = "MASTER_PW" }

[connectors.master.runner]
batch_size = 100
retry_max = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connectors.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_resolves_secrets_from_the_environment_and_masks_them(tmp_path: Path) -> None:
    loaded = config_file.load(write(tmp_path, GOOD), environ={"MASTER_PW": "s3cret"})
    master = loaded.instance("master")
    assert loaded.bootstrap == "127.0.0.1:19092" and loaded.topic_prefix == "t."
    assert master.kind == "pension-master"
    assert master.settings["password"] == "s3cret"
    assert master.public_settings()["password"] == "***"
    assert "s3cret" not in repr(master.public_settings())
    assert master.runner.batch_size == 100 and master.runner.retry_max == 5
    assert master.runner.retry_initial == 0.5  # default


def test_a_password_inside_a_url_is_masked_too(tmp_path: Path) -> None:
    loaded = config_file.load(write(tmp_path, "[connectors.m]\nkind = 'k'\n"
                                          "dsn = 'postgresql://sync:pa55@master:5432/db'\n"))
    assert loaded.instance("m").public_settings()["dsn"] == "postgresql://sync:***@master:5432/db"


@pytest.mark.parametrize(("text", "message"), [
    (GOOD, "MASTER_PW"),  # the variable is not set
    ("[connectors.x]\nurl = 'http://p'\n", "`kind` is required"),
    ("[connectors.x]\nkind = 'k'\n[connectors.x.runner]\nbatch_size = 0\n", "positive number"),
    ("[connectors.x]\nkind = 'k'\n[connectors.x.runner]\nbatchsize = 3\n", "unknown key"),
    ("[kafka]\nbootstrap = 9092\n", "bootstrap must be a string"),
    ("[connectors.x\nkind = 'k'\n", "not valid TOML"),
    ("[extra]\n", "unknown top-level table"),
])
def test_config_errors_say_where_and_what(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_file.load(write(tmp_path, text), environ={})
    assert message in str(caught.value)
    assert str(tmp_path / "connectors.toml") in str(caught.value)


def test_unknown_instance_lists_the_known_ones(tmp_path: Path) -> None:
    loaded = config_file.load(write(tmp_path, GOOD), environ={"MASTER_PW": "x"})
    with pytest.raises(ConfigError, match="instances in this file: master"):
        loaded.instance("ministry")


def test_connectors_are_found_through_entry_points() -> None:
    kinds = registry.installed()
    assert {"pension-master", "guangdong-xregion", "guangdong-results", "ministry-offsite",
            "payment-ledger", "community-office"} <= set(kinds)
    cls = registry.load("community-office")
    assert cls.kind == "community-office" and registry.is_source(cls)
    with pytest.raises(ConfigError, match="no connector of kind 'nope' is installed"):
        registry.load("nope")


def test_backoff_grows_exponentially_with_full_jitter_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays), "jittered"


def test_retrying_retries_transient_failures_and_stops_when_asked() -> None:
    calls: list[int] = []
    retried: list[BaseException] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise PartnerUnavailable("503 from the partner")
        return "ok"

    stop = threading.Event()
    log = logging.getLogger("test")
    result = retrying(flaky, "polling", backoff=Backoff(0.001, 0.002), stop=stop, log=log,
                      on_retry=retried.append)
    assert result == "ok" and len(calls) == 3 and len(retried) == 2

    def down() -> None:
        stop.set()
        raise PartnerUnavailable("down")

    with pytest.raises(Stopped):
        retrying(down, "polling", backoff=Backoff(0.001, 0.002), stop=stop, log=log)

    def bug() -> None:
        raise KeyError("a connector bug is not retried")

    with pytest.raises(KeyError):
        retrying(bug, "polling", backoff=Backoff(0.001, 0.002), stop=threading.Event(), log=log)


def test_event_ids_are_deterministic_per_partner_record() -> None:
    assert event_id_of("ministry-offsite", "B20170405.csv:17", 0) == \
        event_id_of("ministry-offsite", "B20170405.csv:17", 0)
    assert len({event_id_of("ministry-offsite", "B20170405.csv:17", 0),
                event_id_of("ministry-offsite", "B20170405.csv:18", 0),
                event_id_of("ministry-offsite", "B20170405.csv:17", 1),
                event_id_of("guangdong-xregion", "B20170405.csv:17", 0)}) == 4


def test_a_misspelt_required_setting_names_the_misspelling_and_the_known_keys() -> None:
    from connectors.examples.community_office.connector import CommunityOfficeSource

    with pytest.raises(ConfigError) as caught:
        CommunityOfficeSource("offices", {"logfile": "/mnt/offices/log.csv"})
    text = str(caught.value)
    assert "setting 'log_file' is required" in text
    assert "'logfile' looks like a misspelling of it" in text, text
    assert "known settings so far: log_file" in text, text


def test_a_missing_required_setting_with_nothing_close_lists_what_was_given() -> None:
    from connectors.examples.community_office.connector import CommunityOfficeSource

    with pytest.raises(ConfigError) as caught:
        CommunityOfficeSource("offices", {"url": "http://x"})
    text = str(caught.value)
    assert "misspelling" not in text and "settings given and not known so far: url" in text
