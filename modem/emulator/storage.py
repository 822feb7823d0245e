"""Message memories (TS 27.005 <mem>): SM, ME, SR and MT (SM and ME seen as one)."""

from __future__ import annotations


class Stored:
    """One stored PDU (SMSC field included) with its <stat> and TPDU length."""

    __slots__ = ("hex", "length", "stat")

    def __init__(self, stat: int, hexpdu: str, length: int) -> None:
        self.stat = stat
        self.hex = hexpdu
        self.length = length


class Storage:
    """One message memory (TS 27.005 <mem>) with fixed capacity and a first index."""

    def __init__(self, name: str, capacity: int, base: int) -> None:
        self.name = name
        self.capacity = capacity
        self.base = base
        self.slots: dict[int, Stored] = {}
        self.clamp: int | None = None  # the storage-full fault: "capacity" frozen at this count

    def used(self) -> int:
        """Messages stored."""
        return len(self.slots)

    def is_full(self) -> bool:
        """No free slot (or the storage-full fault is on)."""
        limit = self.capacity if self.clamp is None else min(self.clamp, self.capacity)
        return len(self.slots) >= limit

    def valid(self, index: int) -> bool:
        """Is the index inside this storage?"""
        return self.base <= index < self.base + self.capacity

    def put(self, stat: int, hexpdu: str, length: int) -> int | None:
        """Store at the lowest free index; None when full."""
        if self.is_full():
            return None
        for i in range(self.base, self.base + self.capacity):
            if i not in self.slots:
                self.slots[i] = Stored(stat, hexpdu, length)
                return i
        return None

    def get(self, index: int) -> Stored | None:
        """The message at index, if any."""
        return self.slots.get(index)

    def place(self, index: int, stat: int, hexpdu: str) -> None:
        """Put a PDU (SMSC field included, as +CMGR shows it) at a given index (test set-up)."""
        if not self.valid(index):
            raise ValueError(f"index {index} outside {self.name}")
        pdu = bytes.fromhex(hexpdu)
        self.slots[index] = Stored(stat, hexpdu.upper(), len(pdu) - 1 - pdu[0])

    def delete(self, index: int) -> None:
        """Free the slot."""
        self.slots.pop(index, None)

    def items(self) -> list[tuple[int, Stored]]:
        """Stored messages in index order."""
        return sorted(self.slots.items())


class MtStorage(Storage):
    """'MT': SM and ME seen as one memory, SM indexes first (TS 27.005 3.2.2)."""

    def __init__(self, sm: Storage, me: Storage, base: int) -> None:
        super().__init__("MT", sm.capacity + me.capacity, base)
        self.sm = sm
        self.me = me

    def _locate(self, index: int) -> tuple[Storage, int]:
        if index < self.base + self.sm.capacity:
            return self.sm, index
        return self.me, index - self.sm.capacity

    def used(self) -> int:
        return self.sm.used() + self.me.used()

    def is_full(self) -> bool:
        return self.sm.is_full() and self.me.is_full()

    def put(self, stat: int, hexpdu: str, length: int) -> int | None:
        i = self.sm.put(stat, hexpdu, length)
        if i is not None:
            return i
        j = self.me.put(stat, hexpdu, length)
        return None if j is None else j + self.sm.capacity

    def get(self, index: int) -> Stored | None:
        store, local = self._locate(index)
        return store.get(local)

    def delete(self, index: int) -> None:
        store, local = self._locate(index)
        store.delete(local)

    def items(self) -> list[tuple[int, Stored]]:
        me = [(i + self.sm.capacity, s) for i, s in self.me.items()]
        return self.sm.items() + me
