"""Secrets out of logs and output; unknown DRIFTWARDEN_* variables are errors naming the nearest setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.config import Settings, mask_dsn, unknown_environment
from stream.contracts.redact import safe_url


@pytest.mark.parametrize("password", ["plain", "with/slash", "with#hash", "with?query", "with@at", "a:b", "%2F"])
def test_dsn_password_is_masked_whatever_it_holds(password: str) -> None:
    shown = mask_dsn(f"http://bob:{password}@db:8123/x")
    assert shown == "http://bob:***@db:8123/x"
    assert password not in shown.replace("bob:***@db:8123/x", "")


@pytest.mark.parametrize(("url", "secret"), [
    ("https://user:hunter2@hooks.example.com/alert", "hunter2"),
    ("https://hooks.example.com/alert?token=s3cr3t", "s3cr3t"),
    ("https://hooks.slack.com/services/T0AB1234/B0CD5678/abcdefSECRET123456", "abcdefSECRET123456"),
    ("https://hooks.example.com/alert#frag-token", "frag-token"),
])
def test_logged_urls_keep_no_credentials(url: str, secret: str) -> None:
    shown = safe_url(url)
    assert secret not in shown and shown.startswith("https://hooks.")


def test_unknown_variables_name_the_nearest_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = Settings.model_fields
    assert unknown_environment({"DRIFTWARDEN_WEB_PORT": "1", "OTHER": "x"}, fields) == []
    errors = unknown_environment({"DRIFTWARDEN_WEB_PROT": "1"}, fields)
    assert errors == ["DRIFTWARDEN_WEB_PROT is not a setting: did you mean DRIFTWARDEN_WEB_PORT?"]
    monkeypatch.setenv("DRIFTWARDEN_KAFKA_SECURITY_PROTOKOL", "SSL")
    with pytest.raises(ValidationError, match="DRIFTWARDEN_KAFKA_SECURITY_PROTOKOL is not a setting"):
        Settings()


def test_every_field_is_a_known_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Derived from the fields, so settings added later are known without a list to update."""
    env = {f"DRIFTWARDEN_{name.upper()}": "" for name in Settings.model_fields}
    assert unknown_environment(env, Settings.model_fields) == []


def test_config_output_masks_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWARDEN_WEB_TOKEN", "tok-123456")
    monkeypatch.setenv("DRIFTWARDEN_WEBHOOK_URL", "https://u:pw@hooks.example.com/x?token=abc")
    shown = str(Settings().masked())
    assert "tok-123456" not in shown and "pw@" not in shown and "abc" not in shown
