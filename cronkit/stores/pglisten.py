"""The PostgreSQL store's listener: one thread per store that ``LISTEN``\\ s on a
dedicated psycopg connection (the job channel, and the ends channel a Celery dispatcher
listens on) and calls its callbacks; it reconnects on its own and wakes its callbacks
once it has, as notifications sent meanwhile are gone. A mixin of PostgresStore."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cronkit.stores.postgres")

CHANNEL = "cronkit"
# Sent by a store whose ``notify_ends`` is set when a job leaves RUNNING.
ENDS_CHANNEL = "cronkit_ends"

Notices = tuple[tuple[str, str], ...]
"""The notifications a transaction sends at its COMMIT: (channel, payload) pairs, the
payloads made of digits, colons and commas only (``_ends_payload``)."""


class Listening:
    """start_listener / stop_listener / wait_for_notify (IListeningStore)."""

    notify_channel = CHANNEL
    ends_channel = ENDS_CHANNEL
    _sa_url: Any

    def _init_listener_state(self) -> None:
        self._listen_lock = threading.Lock()
        self._callbacks: dict[str, list[Callable[..., None]]] = {}
        self._listener: threading.Thread | None = None
        self._listen_stop = threading.Event()
        self._listening = threading.Event()   # LISTEN is in place
        self._notified = threading.Event()    # something arrived since the last wait

    def _conninfo(self) -> str:
        return self._sa_url.set(drivername="postgresql").render_as_string(hide_password=False)

    def start_listener(self, callback: Callable[..., None] | None = None,
                       timeout: float = 10.0, channel: str = CHANNEL) -> bool:
        """Call ``callback()`` whenever a job is queued or requeued, or a crontab saved,
        in any process using this database; with ``channel=ENDS_CHANNEL``, call
        ``callback(payload)`` whenever a store with ``notify_ends`` ended jobs (or
        requeued them), ``payload`` naming them: "id:attempt" each, comma-separated
        ("id:" where the attempt was not given, "" for jobs unknown). Starts the
        listener thread on first use and waits up to ``timeout`` seconds for its
        LISTEN; True if it is listening. A callback is also called (with "" on
        ENDS_CHANNEL) each time the listener (re)connects: what was sent while it was
        away is lost."""
        with self._listen_lock:
            callbacks = self._callbacks.setdefault(channel, [])
            if callback is not None and callback not in callbacks:
                callbacks.append(callback)
            if self._listener is None or not self._listener.is_alive():
                self._listen_stop.clear()
                self._listener = threading.Thread(target=self._listen_loop, daemon=True,
                                                  name="cronkit-pg-listener")
                self._listener.start()
        return self._listening.wait(timeout)

    def stop_listener(self, callback: Callable[..., None] | None = None,
                      channel: str = CHANNEL) -> None:
        """Forget ``callback`` (of ``channel``); with none given, or none left on any
        channel, stop the listener."""
        with self._listen_lock:
            callbacks = self._callbacks.get(channel, [])
            if callback is not None and callback in callbacks:
                callbacks.remove(callback)
            if callback is not None and any(self._callbacks.values()):
                return
            self._callbacks.clear()
            thread, self._listener = self._listener, None
            self._listen_stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def wait_for_notify(self, timeout: float) -> bool:
        """Sleep until a notification arrives or ``timeout`` seconds pass; True if one
        did (one that arrived since the previous wait counts). A worker's sleep."""
        if self._listener is None or not self._listener.is_alive():
            self.start_listener()
        got = self._notified.wait(timeout)
        self._notified.clear()
        return got

    def _wake(self, notices: Notices | None = None) -> None:
        """Call the callbacks of the channels of ``notices`` (every callback when None,
        as if everything had happened): those of ``notify_channel`` once, those of
        ``ends_channel`` with each payload ("" when None)."""
        channels = None if notices is None else {channel for channel, _ in notices}
        if channels is None or self.notify_channel in channels:
            self._notified.set()
        with self._listen_lock:
            wakes = list(self._callbacks.get(self.notify_channel, ())) \
                if channels is None or self.notify_channel in channels else []
            ends = list(self._callbacks.get(self.ends_channel, ()))
        calls: list[tuple[Callable[..., None], tuple[str, ...]]] = [(fn, ()) for fn in wakes]
        if ends:
            payloads = [""] if notices is None else \
                [payload for channel, payload in notices if channel == self.ends_channel]
            calls += [(fn, (payload,)) for payload in payloads for fn in ends]
        for fn, args in calls:
            try:
                fn(*args)
            except Exception:  # a callback must not stop the listener
                log.exception("listener callback %r failed", fn)

    def _listen_loop(self) -> None:
        import psycopg

        delay = 0.1
        while not self._listen_stop.is_set():
            try:
                with psycopg.connect(self._conninfo(), autocommit=True, connect_timeout=10,
                                     keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                     keepalives_count=3,
                                     application_name="cronkit-listener") as conn:
                    conn.execute(f"LISTEN {self.notify_channel}")
                    conn.execute(f"LISTEN {self.ends_channel}")
                    if self._listening.is_set():
                        log.info("listener reconnected")
                    self._listening.set()
                    delay = 0.1
                    self._wake()   # whatever was sent while we were away is lost
                    while not self._listen_stop.is_set():
                        got = tuple((n.channel, n.payload)
                                    for n in conn.notifies(timeout=0.5, stop_after=1))
                        if got:
                            self._wake(got)
            except psycopg.Error as exc:
                if self._listen_stop.is_set():
                    break
                log.warning("listener lost its connection (%s); reconnecting in %.1f s",
                            exc, delay)
                self._listen_stop.wait(delay)
                delay = min(delay * 2, 5.0)
