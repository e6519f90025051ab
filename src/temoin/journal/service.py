"""Writing the journal: each entry is chained to the previous one of its tenant's chain and written
to the database in the caller's transaction, then to the append-only file once that transaction
commits. An operation and its journal entry therefore commit together or not at all. A file write
lost to a crash is appended later by `journal.repair`, never silently by an ordinary command.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, event, insert, select, update
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.journal.entry import GENESIS, PLATFORM_CHAIN, EntryDraft, entry_body, entry_hash
from temoin.journal.models import JournalEntry, JournalHead
from temoin.journal.sinks import FileSink

log = logging.getLogger("temoin.journal")
APPEND_WAIT_S = 2.0  # longest wait for the entry before one's own to reach the file (its writer committed first)
WARN_EVERY_S = 600.0  # a chain whose predecessors keep not coming is told of at most this often
IN_FLIGHT_MAX = 256  # a file further behind than this is not waiting for writers in flight, but for repair
_PENDING = "temoin.journal.pending"


class Journal:
    def __init__(self, sink: FileSink) -> None:
        self.sink = sink
        # The last seq this process appended to each chain's file: an entry that follows it needs no look at the
        # file before its own append (the usual case), only one whose predecessor another writer holds.
        self._appended: dict[str, int] = {}
        self._warned: dict[str, float] = {}  # chain -> when a wait that ran out was last told of

    def write(
        self,
        db: Session,
        draft: EntryDraft,
        *,
        tenant_id: int | None,
        tenant_slug: str | None,
        at: datetime | None = None,
    ) -> None:
        self.write_many(db, [draft], tenant_id=tenant_id, tenant_slug=tenant_slug, at=at)

    def write_many(
        self,
        db: Session,
        drafts: list[EntryDraft],
        *,
        tenant_id: int | None,
        tenant_slug: str | None,
        at: datetime | None = None,
    ) -> None:
        """Append entries to one chain in the caller's transaction, moving the chain head once."""
        if not drafts:
            return
        chain = tenant_slug or PLATFORM_CHAIN
        seq, prev = self._advance_head(db, chain, len(drafts))
        # Timestamped once the head is held, so times follow sequence numbers.
        at = at or utcnow()
        rows = []
        for draft in drafts:
            body = entry_body(draft, chain=chain, seq=seq, prev=prev, at=at, tenant=tenant_slug)
            digest = entry_hash(body)
            rows.append(
                {
                    "chain": chain,
                    "seq": seq,
                    "at": at,
                    "tenant_id": tenant_id,
                    "action": draft.action.value,
                    "event": draft.event,
                    "body": body.decode(),
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            self._queue_for_file(db, chain, at, seq, digest, body)
            seq, prev = seq + 1, digest
        db.execute(
            update(JournalHead).where(JournalHead.chain == chain).values(hash=prev),
            execution_options={"synchronize_session": False},
        )
        db.execute(insert(JournalEntry), rows)

    def _advance_head(self, db: Session, chain: str, count: int) -> tuple[int, str]:
        """Reserve `count` sequence numbers; returns the first one and the hash to chain onto."""
        # The UPDATE comes first: it takes the row lock (PostgreSQL) or the write lock (SQLite)
        # before the head is read, so two writers can never chain onto the same entry.
        moved = db.execute(
            update(JournalHead).where(JournalHead.chain == chain).values(seq=JournalHead.seq + count),
            execution_options={"synchronize_session": False},
        )
        if cast("CursorResult[Any]", moved).rowcount == 0:
            db.add(JournalHead(chain=chain, seq=count, hash=GENESIS))
            db.flush()
            return 1, GENESIS
        head = db.execute(select(JournalHead.seq, JournalHead.hash).where(JournalHead.chain == chain)).one()
        return head.seq - count + 1, head.hash

    def _queue_for_file(self, db: Session, chain: str, at: datetime, seq: int, digest: str, body: bytes) -> None:
        pending = db.info.get(_PENDING)
        if pending is None:
            pending = db.info[_PENDING] = []
            journal = self

            @event.listens_for(db, "after_commit", once=True)
            def _flush(session: Session) -> None:
                items = session.info.pop(_PENDING, [])
                try:
                    journal._append_file(items)
                except OSError:
                    # The operation and its entry are committed in the database, the authoritative sink: the
                    # request must not fail for the copy. Verify names the gap; `temoin journal repair` (and
                    # the server's next start) writes the entries once the disk has room.
                    log.critical(
                        "journal file not written (the database has the entries): %d entries of chain "
                        "%s; free space, then run `temoin journal repair`",
                        len(items),
                        items[0][0],
                        exc_info=True,
                    )

            @event.listens_for(db, "after_rollback", once=True)
            def _drop(session: Session) -> None:
                session.info.pop(_PENDING, None)

        pending.append((chain, at.strftime("%Y-%m"), seq, digest, body))

    def _append_file(self, items: list[tuple[str, str, int, str, bytes]]) -> None:
        grouped: dict[tuple[str, str], list[tuple[int, str, bytes]]] = {}
        for chain, month, seq, digest, body in items:
            grouped.setdefault((chain, month), []).append((seq, digest, body))
        for (chain, month), entries in grouped.items():
            self._wait_turn(chain, entries[0][0])
            self.sink.append(chain, month, [(digest, body) for _, digest, body in entries])
            self._appended[chain] = max(self._appended.get(chain, 0), entries[-1][0])

    def _wait_turn(self, chain: str, seq: int) -> None:
        """Let the file receive the entries in sequence order. The head's row lock orders the transactions, but each
        appends to the file after its commit: the writer of the entry just before (another thread, or another node
        on the same journal folder) may not have appended yet. Wait briefly for it; a predecessor that never comes
        (its process died between commit and append) is `journal repair`'s, as before."""
        if self._appended.get(chain, 0) >= seq - 1:
            return  # this process appended the predecessor itself
        deadline = time.monotonic() + APPEND_WAIT_S
        while True:
            last = self.sink.last_line(chain)
            if last is None:
                return  # no file yet, or one only repair can bring level
            behind = seq - 1 - parse_body(last.body)["seq"]
            if behind <= 0 or behind > IN_FLIGHT_MAX:
                return
            if time.monotonic() >= deadline:
                self._waited_in_vain(chain, seq, behind)
                return
            time.sleep(0.002)

    def _waited_in_vain(self, chain: str, seq: int, behind: int) -> None:
        """Each entry of this chain now waits APPEND_WAIT_S after its commit: say why, loudly but not per entry. The
        usual cause is several nodes each with a journal folder of its own (another node's entries never reach this
        file); a writer that died between its commit and its append is the other."""
        now = time.monotonic()
        if now - self._warned.get(chain, -WARN_EVERY_S) < WARN_EVERY_S:
            return
        self._warned[chain] = now
        log.error(
            "journal: entry %d of chain %s waited %.0f s for the %d entr%s before it, committed but not in %s: "
            "with several nodes, every node must use the same journal folder (TEMOIN_JOURNAL_FOLDER), or each of "
            "their entries costs this wait; otherwise run `temoin journal repair`",
            seq,
            chain,
            APPEND_WAIT_S,
            behind,
            "y" if behind == 1 else "ies",
            self.sink.root,
        )


def parse_body(body: str | bytes) -> dict:
    return orjson.loads(body)
