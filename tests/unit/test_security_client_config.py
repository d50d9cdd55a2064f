"""The client config file: location, parsing, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkube.security.client_config import (
    ClientConfig,
    ClientConfigError,
    default_config_path,
    load_client_config,
    write_client_config,
)


def test_default_path_prefers_the_environment() -> None:
    assert default_config_path({"RAFTKUBECONFIG": "/x/cfg"}) == Path("/x/cfg")
    assert default_config_path({}) == Path("~/.raftkube/config").expanduser()
    assert default_config_path({"RAFTKUBECONFIG": ""}) == Path("~/.raftkube/config").expanduser()


def test_round_trip_and_relative_paths(tmp_path) -> None:
    cfg = ClientConfig(("127.0.0.1:1",), tmp_path / "ca.crt", tmp_path / "token", user="u")
    write_client_config(tmp_path / "cfg", cfg)
    assert load_client_config(tmp_path / "cfg") == cfg
    (tmp_path / "rel").write_text("masters: [a:1]\ncaFile: sub/ca.crt\ntokenFile: t\n")
    rel = load_client_config(tmp_path / "rel")
    assert rel.ca_file == tmp_path / "sub" / "ca.crt"
    assert rel.token_file == tmp_path / "t"


@pytest.mark.parametrize(("text", "message"), [
    ("masters: []\ncaFile: c", "masters: expected a non-empty list"),
    ("masters: [a:1]\n", "caFile: required"),
    ("masters: [a:1]\ncaFile: c\nclientCertFile: x\n", "go together"),
    ("masters: [a:1]\ncaFile: c\ntoken: abc\n", "unknown field 'token'"),
    ("masters: [a:1]\ncaFile: c\nkind: Other\n", "kind: expected 'ClientConfig'"),
    ("- a\n", "expected a mapping"),
])
def test_bad_files_name_the_field(tmp_path, text, message) -> None:
    (tmp_path / "cfg").write_text(text)
    with pytest.raises(ClientConfigError, match=message):
        load_client_config(tmp_path / "cfg")


def test_missing_file_and_missing_credential_files_are_named(tmp_path) -> None:
    with pytest.raises(ClientConfigError, match="nope: cannot read the client config"):
        load_client_config(tmp_path / "nope")
    cfg = ClientConfig(("a:1",), tmp_path / "ca.crt")
    with pytest.raises(ClientConfigError, match=r"ca\.crt"):
        cfg.credentials()
