"""The department's contacts file: validated at start-up with the file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from heard_notify.contacts import load_directory
from heard_shared.config_files import ConfigFileError

ROOT = Path(__file__).resolve().parents[2]
ORGANISATION = ROOT / "config" / "organisation.yaml"


def test_the_shipped_contacts_reach_every_unit_and_level() -> None:
    directory = load_directory(ROOT / "config" / "contacts.yaml", ORGANISATION)
    assert directory.oversight_board == "oversight-board"
    assert [c.channel for c in directory.contacts_of("oversight-board")] == ["email", "sms"]
    desk = directory.resolve("unit:north-patrol/duty-desk")
    assert desk is not None and desk.email == "north.desk@riverton.example"
    assert directory.resolve("unit:north-patrol/nobody") is None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contacts.yaml"
    path.write_text(text)
    return path


def test_a_bad_value_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "oversight_board: board\nunits:\n  board:\n    - {id: clerk, email: clerk@x.example}\n"
        "  north:\n    - {id: desk, email: not-an-address}\n",
    )
    with pytest.raises(ConfigFileError) as refused:
        load_directory(path, None)
    assert f"{path}:6: units.north.0.email" in str(refused.value)


def test_a_contact_needs_exactly_one_channel_and_webhooks_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        "oversight_board: board\nunits:\n  board:\n    - {id: clerk, email: c@x.example, sms: '+16125550100'}\n",
    )
    with pytest.raises(ConfigFileError, match="exactly one of email, webhook or sms"):
        load_directory(path, None)
    hook = write(
        tmp_path,
        "oversight_board: board\nunits:\n  board:\n"
        "    - {id: hook, webhook: 'https://board.example/hook', secret_env: BOARD_HOOK_SECRET}\n",
    )
    with pytest.raises(ConfigFileError, match="BOARD_HOOK_SECRET must hold"):
        load_directory(hook, None)
    monkeypatch.setenv("BOARD_HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert load_directory(hook, None).contacts_of("board")[0].webhook_secrets()[0].startswith("whsec_")


def test_every_level_of_the_organisation_must_be_reachable(tmp_path: Path) -> None:
    shipped = (ROOT / "config" / "contacts.yaml").read_text()
    without_commander = shipped.replace(
        "  patrol-command:\n    - {id: commander, email: patrol.command@riverton.example}\n", ""
    )
    with pytest.raises(ConfigFileError, match="no contact for patrol-command"):
        load_directory(write(tmp_path, without_commander), ORGANISATION)
    with pytest.raises(ConfigFileError, match="units not in"):
        load_directory(write(tmp_path, shipped + "  typo-unit:\n    - {id: x, email: x@x.example}\n"), ORGANISATION)


def test_bad_times_and_zones_are_refused(tmp_path: Path) -> None:
    base = "units:\n  board:\n    - {id: c, email: c@x.example, quiet_hours: '%s'}\noversight_board: board\n"
    with pytest.raises(ConfigFileError, match="22:00-07:00"):
        load_directory(write(tmp_path, base % "10pm to 7am"), None)
    with pytest.raises(ConfigFileError, match="IANA time zone"):
        load_directory(write(tmp_path, "timezone: Mars/Olympus\n" + base % "22:00-07:00"), None)
