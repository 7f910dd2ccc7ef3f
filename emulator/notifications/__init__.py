"""Webhook notifications, as distribution 2.8 sends them: an event for each push, pull, mount and delete,
POSTed to every configured endpoint (``notifications.endpoints``) in an envelope of media type
``application/vnd.docker.distribution.events.v1+json``.

:mod:`.events` records events and builds their JSON, :mod:`.sender` delivers them to one endpoint in
batches, :mod:`.notifier` ties the two to the registry's requests.
"""

from __future__ import annotations

import typing as t

from .events import ENVELOPE_MEDIA_TYPE as ENVELOPE_MEDIA_TYPE
from .notifier import Notifier as Notifier
from .notifier import RequestNotifier as RequestNotifier
from .sender import EndpointMetrics as EndpointMetrics

if t.TYPE_CHECKING:
    from ..config import Config


def make_notifier(config: Config) -> Notifier | None:
    """The notifier of ``config``, or ``None`` when no endpoint is enabled (then nothing is built per
    request)."""
    if not config.notifications.endpoints:
        return None
    notifier = Notifier(config.notifications, config.http)
    return notifier if notifier.senders else None
