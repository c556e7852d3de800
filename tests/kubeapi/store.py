"""In-memory object storage with a global resourceVersion and an event log for watches."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass

StoreKey = tuple[str, str]  # (group, plural)


@dataclass(frozen=True)
class Event:
    revision: int
    key: StoreKey
    namespace: str
    type: str  # ADDED | MODIFIED | DELETED
    object: dict


class Store:
    """Objects by type, namespace and name: every lookup is a dict access, never a scan.

    Stored objects are never mutated; a write stores a new dict, so readers and the event log
    can hold references without copying.
    """

    def __init__(self, event_window: int = 200_000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.revision = 0
        self._objects: dict[StoreKey, dict[str, dict[str, dict]]] = defaultdict(
            lambda: defaultdict(dict))
        self._events: deque[Event] = deque(maxlen=event_window)
        self._applied: dict[tuple, dict] = {}

    def next_revision(self) -> int:
        self.revision += 1
        return self.revision

    def get(self, key: StoreKey, namespace: str, name: str) -> dict | None:
        return self._objects[key][namespace].get(name)

    def items(self, key: StoreKey, namespace: str | None = None) -> list[dict]:
        """Objects of one type (one namespace, or all), ordered by namespace then name."""
        by_namespace = self._objects[key]
        namespaces = [namespace] if namespace is not None else sorted(by_namespace)
        result = []
        for ns in namespaces:
            objects = by_namespace.get(ns) or {}
            result.extend(objects[name] for name in sorted(objects))
        return result

    def count(self, key: StoreKey) -> int:
        return sum(len(v) for v in self._objects[key].values())

    def save(self, key: StoreKey, namespace: str, obj: dict, event_type: str) -> None:
        self._objects[key][namespace][obj["metadata"]["name"]] = obj
        self._record(key, namespace, event_type, obj)

    def remove(self, key: StoreKey, namespace: str, obj: dict) -> None:
        self._objects[key][namespace].pop(obj["metadata"]["name"], None)
        prefix = (key, namespace, obj["metadata"]["name"])
        for applied_key in [k for k in self._applied if k[:3] == prefix]:
            del self._applied[applied_key]
        self._record(key, namespace, "DELETED", obj)

    def namespaced_keys(self, namespace: str) -> list[StoreKey]:
        return [key for key, by_ns in self._objects.items() if by_ns.get(namespace)]

    def _record(self, key: StoreKey, namespace: str, event_type: str, obj: dict) -> None:
        self._events.append(Event(int(obj["metadata"]["resourceVersion"]), key, namespace,
                                  event_type, obj))
        self.changed.notify_all()

    def events_after(self, revision: int) -> list[Event] | None:
        """Events newer than `revision`, oldest first; None when the log no longer reaches back."""
        if self._events and revision < self._events[0].revision - 1 and \
                len(self._events) == self._events.maxlen:
            return None
        newer = []
        for event in reversed(self._events):
            if event.revision <= revision:
                break
            newer.append(event)
        newer.reverse()
        return newer

    def applied_config(self, key: StoreKey, namespace: str, name: str, manager: str) -> dict | None:
        return self._applied.get((key, namespace, name, manager))

    def remember_applied(self, key: StoreKey, namespace: str, name: str, manager: str,
                         config: dict) -> None:
        self._applied[(key, namespace, name, manager)] = config
