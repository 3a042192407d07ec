"""The SASL password never reaches what Dagster shows (the UI's resources page, snapshots).

Dagster serialises every resource's configured values into the repository snapshot that the
webserver displays. A secret given as a plain value is shown there in clear; one given as an
``EnvVar`` is shown as the variable's name.
"""

from __future__ import annotations

import uuid

import pytest
from dagster import Definitions
from dagster._core.remote_representation.external_data import RepositorySnap

from pipelines.resources import resources_for
from streams.settings import Settings

pytestmark = pytest.mark.reliability

MARKER = f"dagster-secret-{uuid.uuid4().hex}"
SASL_ENV = {
    "TOKENHUB_BOOTSTRAP_SERVERS": "kafka.internal:9094",
    "TOKENHUB_SECURITY_PROTOCOL": "SASL_SSL",
    "TOKENHUB_SASL_MECHANISM": "SCRAM-SHA-512",
    "TOKENHUB_SASL_USERNAME": "tokenhub",
    "TOKENHUB_SASL_PASSWORD": MARKER,
    "TOKENHUB_HOME": "/tmp/tokenhub-dagster-secret-test",
    "TOKENHUB_BOOKS_DIR": str(Settings().books),
}


def _snapshot_text(env: str) -> str:
    resources = resources_for(env, Settings() if env == "local" else None)
    repository = Definitions(resources=dict(resources)).get_repository_def()
    return str(RepositorySnap.from_def(repository))


def test_deployed_resources_show_the_password_as_an_env_var(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    text = _snapshot_text("deployed")
    assert "TOKENHUB_SASL_PASSWORD" in text  # the variable's name, not its value
    assert MARKER not in text


def test_local_resources_never_show_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    assert MARKER not in _snapshot_text("local")
