"""The single Faust app of tokenhub: live token economics on ``token-usage.events.v1``.

Run it with ``tokenhub worker``; several workers (same ``Settings.worker_app_id``) share the
topic's partitions as one consumer group. Records come from non-Faust producers, so the
events topic is read as raw bytes and parsed with :func:`streams.events.parse` (the one
contract). The processors live in :mod:`streams.agents`, the HTTP views in
:mod:`streams.views`; the exactly-once design is explained in :mod:`streams.state`.
"""

from __future__ import annotations

import faust

from streams.settings import Settings, get_settings
from streams.topics import EVENTS


def create_app(settings: Settings) -> faust.App:
    """The Faust app configured from the one settings object."""
    settings.worker_state.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.worker_app_id,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=settings.faust_credentials(),  # SASL/TLS, as every client
        # State is our own per-partition RocksDB (streams.state), committed with offsets:
        # Faust's commits only bound how much is redelivered after a crash.
        processing_guarantee="at_least_once",
        broker_commit_interval=settings.worker_commit_interval_seconds,
        # A killed worker's partitions move to the others after this, not Faust's 60 s.
        broker_session_timeout=settings.worker_session_timeout_seconds,
        broker_heartbeat_interval=settings.worker_session_timeout_seconds / 4,
        consumer_auto_offset_reset="earliest",
        datadir=str(settings.worker_state / "faust"),
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        topic_replication_factor=1,
        autodiscover=False,
    )


settings = get_settings()
app = create_app(settings)
events_topic = app.topic(
    settings.live_source_topic,
    key_serializer="raw",
    value_serializer="raw",
    partitions=EVENTS.partitions,
)

# Registering the agent and the views needs ``app``; imported last on purpose.
from streams import views  # noqa: E402
from streams.agents import live  # noqa: E402

__all__ = ["app", "create_app", "events_topic", "live", "settings", "views"]
