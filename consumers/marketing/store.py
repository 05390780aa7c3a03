"""The marketing database: suppression list, restrictions, contacts and erasure hashes.

Each (subject, channel, purpose) cell holds the latest decision by event time: a
withdrawal suppresses, a grant lifts a suppression only when it is strictly newer
(equal times: the withdrawal wins), so replays and out-of-order deliveries converge
on the same list. Every instruction is applied in the same transaction as its row
in ``applied_instructions`` (a batch shares one transaction): a redelivered
instruction changes nothing and gets its first answer back. Erasure deletes the
person's contact data and keeps only keyed hashes of their addresses (and of their
subject id), which keep suppressing. ``answered_instructions`` holds the ids the
runner has answered (receipt acknowledged), so it can drop a duplicate without a
second receipt (:class:`~consumers.protocol.RemembersAnswers`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from consumers.marketing.database import Database, Executor
from consumers.marketing.hashing import AddressHasher, AddressKind
from consumers.marketing.scope import Cell, cells
from consumers.protocol import SinkResult
from consumers.state_records import StateAvro, in_force, state_avro
from schemas.events import ConsentStateRecorded, InstructionIssued, utc_now
from schemas.taxonomy import DIRECT_MARKETING_PURPOSES, Action, Channel, Choice, Outcome, Purpose

_SUPPRESSIONS = """CREATE TABLE IF NOT EXISTS suppressions (
        subject_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        purpose TEXT NOT NULL,
        suppressed INTEGER NOT NULL,
        changed_at BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (subject_id, channel, purpose))"""
_SQLITE_CLUSTERED = " WITHOUT ROWID"
"""SQLite keeps the cells in their primary key's B-tree alone, not in a rowid table plus
an index on the key: each write touches one tree, not two (a million subjects' seed:
~1,050 -> ~710 MB, and its writes ~20-40 % faster). A store created before keeps its
layout; the same statements work on both."""

TABLES = (
    """CREATE TABLE IF NOT EXISTS restrictions (
        subject_id TEXT PRIMARY KEY,
        restricted INTEGER NOT NULL,
        changed_at BIGINT NOT NULL,
        event_id TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS contacts (
        subject_id TEXT PRIMARY KEY,
        email TEXT,
        phone TEXT,
        postal_address TEXT)""",
    """CREATE TABLE IF NOT EXISTS erased_subjects (
        subject_hash TEXT PRIMARY KEY,
        erased_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS erased_addresses (
        address_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        erased_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS applied_instructions (
        instruction_id TEXT PRIMARY KEY,
        outcome TEXT NOT NULL,
        reason TEXT,
        applied_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS answered_instructions (
        instruction_id TEXT PRIMARY KEY,
        answered_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS store_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
)

# A newer decision replaces an older one; at the same event time suppression (1)
# replaces permission (0) but never the other way round.
_UPSERT_CELL = """
INSERT INTO suppressions (subject_id, channel, purpose, suppressed, changed_at, event_id)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (subject_id, channel, purpose) DO UPDATE SET
    suppressed = excluded.suppressed, changed_at = excluded.changed_at,
    event_id = excluded.event_id
WHERE excluded.changed_at > suppressions.changed_at
   OR (excluded.changed_at = suppressions.changed_at
       AND excluded.suppressed >= suppressions.suppressed)"""

_UPSERT_RESTRICTION = """
INSERT INTO restrictions (subject_id, restricted, changed_at, event_id) VALUES (?, ?, ?, ?)
ON CONFLICT (subject_id) DO UPDATE SET
    restricted = excluded.restricted, changed_at = excluded.changed_at,
    event_id = excluded.event_id
WHERE excluded.changed_at > restrictions.changed_at
   OR (excluded.changed_at = restrictions.changed_at
       AND excluded.restricted >= restrictions.restricted)"""

_SEED_CELLS: dict[Purpose, tuple[tuple[str, str], ...]] = {
    purpose: tuple(sorted((c.value, p.value) for c, p in cells([purpose], [])))
    for purpose in DIRECT_MARKETING_PURPOSES
}
"""The suppression-list cells a state entry's purpose covers (every channel it may use)."""

_SEED_CELLS_BY_SYMBOL: dict[str, tuple[tuple[str, str], ...]] = {
    purpose.value: covered for purpose, covered in _SEED_CELLS.items() if covered
}
"""The same, keyed by the Avro symbol a checked state dict carries."""

_WITHDRAWN = Choice.WITHDRAWN.value

_IDS_PER_QUERY = 500
"""Instruction ids per ``IN (...)`` lookup, well under either engine's parameter limit."""

CHANNEL_ADDRESS: dict[Channel, AddressKind] = {
    Channel.EMAIL: AddressKind.EMAIL,
    Channel.SMS: AddressKind.PHONE,
    Channel.TELEPHONE: AddressKind.PHONE,
    Channel.POSTAL_MAIL: AddressKind.POSTAL,
}
"""The contact field each channel reaches a person through (PUSH uses none)."""

_CONTACT_COLUMNS = {
    AddressKind.EMAIL: "email",
    AddressKind.PHONE: "phone",
    AddressKind.POSTAL: "postal_address",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may I contact this person on this channel for this purpose?"."""

    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Contact:
    """A person's contact data as the marketing database holds it."""

    subject_id: str
    email: str | None = None
    phone: str | None = None
    postal_address: str | None = None

    def address(self, kind: AddressKind) -> str | None:
        """The address of ``kind``, if known."""
        value = getattr(self, _CONTACT_COLUMNS[kind])
        return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One line of the suppression export for email service providers."""

    email_hash: str
    channel: str
    purpose: str
    suppressed_at: datetime


def _subject_id(state: StateAvro) -> str:
    return state["subject"]["id"]


def _seed_ms(wire_ms: int) -> int:
    """:func:`to_ms` of the datetime a ``timestamp-millis`` of ``wire_ms`` decodes to,
    without making it: that float round trip truncates ~0.4 % of times to the
    millisecond before, and a seeded time must compare equal to the same event time
    arriving in an instruction (equal times: the withdrawal wins)."""
    return int(wire_ms / 1000 * 1000)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(moment.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(value / 1000, UTC)


class MarketingStore:
    """Suppression list and contacts over one :class:`Database`."""

    def __init__(self, database: Database, hasher: AddressHasher) -> None:
        self.database = database
        self._hash = hasher
        self._seed_erased: set[str] = set()
        """Subjects erased so far by this seed (the runner's one thread seeds)."""
        self._prior_erasures: bool | None = None
        """Whether the store held erasures when this seed began (None: not asked yet)."""
        with database.transaction() as tx:
            for ddl in TABLES:
                tx.run(ddl)
            tx.run(_SUPPRESSIONS if database.postgres else _SUPPRESSIONS + _SQLITE_CLUSTERED)

    # -- instructions --------------------------------------------------------------

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        """Apply ``instruction`` once; a repeat returns the first result unchanged."""
        return self.apply_batch([instruction])[0]

    def apply_batch(self, instructions: Sequence[InstructionIssued]) -> list[SinkResult]:
        """Apply each in order in one transaction (all or nothing); one result each."""
        results: list[SinkResult] = []
        with self.database.transaction() as tx:
            now = utc_now()
            for instruction in instructions:
                results.append(self._apply_once(tx, instruction, now))
        return results

    def _apply_once(
        self, tx: Executor, instruction: InstructionIssued, now: datetime
    ) -> SinkResult:
        seen = tx.rows(
            "SELECT outcome, reason, applied_at FROM applied_instructions WHERE instruction_id = ?",
            (instruction.instruction_id,),
        )
        if seen:
            outcome, reason, applied_at = seen[0]
            return SinkResult(Outcome(outcome), reason, from_ms(applied_at))
        result = self._act(tx, instruction)
        tx.run(
            "INSERT INTO applied_instructions (instruction_id, outcome, reason, applied_at)"
            " VALUES (?, ?, ?, ?)",
            (instruction.instruction_id, result.outcome.value, result.reason, to_ms(now)),
        )
        return SinkResult(result.outcome, result.reason, from_ms(to_ms(now)))

    def _act(self, tx: Executor, instruction: InstructionIssued) -> SinkResult:
        subject = instruction.subject.id
        at = to_ms(instruction.occurred_at)
        action = instruction.action
        if action is Action.ERASE:
            self._erase(tx, subject, at)
            return SinkResult(Outcome.APPLIED)
        if self._erased(tx, subject):
            if action in (Action.SUPPRESS, Action.RESTRICT):
                return SinkResult(Outcome.APPLIED)  # an erased subject is suppressed everywhere
            return SinkResult(Outcome.SKIPPED, "subject was erased; nothing to lift")
        if action in (Action.RESTRICT, Action.LIFT_RESTRICTION):
            restrict = action is Action.RESTRICT
            changed = tx.run(
                _UPSERT_RESTRICTION, (subject, int(restrict), at, instruction.event_id)
            )
            if changed:
                return SinkResult(Outcome.APPLIED)
            return SinkResult(Outcome.SKIPPED, "a newer restriction decision stands")
        covered = cells(instruction.purposes, instruction.channels)
        if not covered:
            return SinkResult(Outcome.SKIPPED, "no marketing channel and purpose in scope")
        suppress = action is Action.SUPPRESS
        changed = self._set_cells(
            tx, subject, covered, suppress=suppress, at=at, event_id=instruction.event_id
        )
        if changed:
            return SinkResult(Outcome.APPLIED)
        if suppress:
            return SinkResult(Outcome.SKIPPED, "a newer grant stands")
        return SinkResult(Outcome.SKIPPED, "a withdrawal at the same time or later stands")

    def _set_cells(
        self,
        tx: Executor,
        subject: str,
        covered: Iterable[Cell],
        *,
        suppress: bool,
        at: int,
        event_id: str,
    ) -> int:
        changed = 0
        for channel, purpose in sorted(covered):
            changed += tx.run(
                _UPSERT_CELL, (subject, channel.value, purpose.value, int(suppress), at, event_id)
            )
        return changed

    def _erase(self, tx: Executor, subject: str, at: int) -> None:
        for row in tx.rows(
            "SELECT email, phone, postal_address FROM contacts WHERE subject_id = ?", (subject,)
        ):
            contact = Contact(subject, *row)
            for kind in _CONTACT_COLUMNS:
                address = contact.address(kind)
                if address is not None:
                    tx.run(
                        "INSERT INTO erased_addresses (address_hash, kind, erased_at)"
                        " VALUES (?, ?, ?) ON CONFLICT (address_hash) DO NOTHING",
                        (self._hash(kind, address), kind.value, at),
                    )
        tx.run(
            "INSERT INTO erased_subjects (subject_hash, erased_at) VALUES (?, ?)"
            " ON CONFLICT (subject_hash) DO NOTHING",
            (self._hash(AddressKind.SUBJECT, subject), at),
        )
        for table in ("contacts", "suppressions", "restrictions"):
            tx.run(f"DELETE FROM {table} WHERE subject_id = ?", (subject,))  # noqa: S608

    def _erased(self, tx: Executor, subject: str) -> bool:
        return bool(
            tx.rows(
                "SELECT 1 FROM erased_subjects WHERE subject_hash = ?",
                (self._hash(AddressKind.SUBJECT, subject),),
            )
        )

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """When each of ``instruction_ids`` the runner has answered (receipt acknowledged)
        was last answered."""
        wanted = list(dict.fromkeys(instruction_ids))
        found: dict[str, datetime] = {}
        with self.database.reading() as tx:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                part = wanted[start : start + _IDS_PER_QUERY]
                marks = ",".join("?" * len(part))
                rows = tx.rows(
                    "SELECT instruction_id, answered_at FROM answered_instructions"  # noqa: S608
                    f" WHERE instruction_id IN ({marks})",
                    part,
                )
                found.update((str(i), from_ms(at)) for i, at in rows)
        return found

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Record ``instruction_ids`` as answered now."""
        now = to_ms(utc_now())
        with self.database.transaction() as tx:
            for instruction_id in dict.fromkeys(instruction_ids):
                tx.run(
                    "INSERT INTO answered_instructions (instruction_id, answered_at)"
                    " VALUES (?, ?) ON CONFLICT (instruction_id) DO UPDATE SET"
                    " answered_at = excluded.answered_at",
                    (instruction_id, now),
                )

    # -- bootstrap -----------------------------------------------------------------

    def needs_bootstrap(self) -> bool:
        """True until a bootstrap from the consent-state topic has finished."""
        with self.database.reading() as tx:
            return not tx.rows("SELECT 1 FROM store_meta WHERE key = 'bootstrapped'")

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        """Seed one subject's suppressions and restriction from its current state."""
        self.bootstrap_batch([state])

    def bootstrap_batch(self, states: Sequence[ConsentStateRecorded]) -> None:
        """Seed many subjects (each at most once) in one transaction: as
        :meth:`seed_avro_batch`, from typed records."""
        self.seed_avro_batch([state_avro(state) for state in states])

    def seed_avro_batch(self, states: Sequence[StateAvro]) -> None:
        """Seed many subjects (each at most once) from their checked Avro dicts, in one
        transaction, rows written with one ``executemany`` per table: a million
        subjects seed in seconds, not minutes.

        An erased subject's contact data goes and its hash stays; a subject erased
        earlier in the seed is not given cells again (the stream never un-erases, but a
        store keeps its own promise).
        """
        if self._prior_erasures is None:
            # Until mark_bootstrapped: a seed cut short by a power loss starts again.
            self.database.bulk_load(True)
        with self.database.transaction() as tx:
            if self._prior_erasures is None:
                self._prior_erasures = bool(tx.rows("SELECT 1 FROM erased_subjects LIMIT 1"))
            live: list[StateAvro] = []
            for state in states:
                if state["erased"]:
                    subject = state["subject"]["id"]
                    self._erase(tx, subject, _seed_ms(state["updated_at"]))
                    self._seed_erased.add(subject)
                else:
                    live.append(state)
            if self._prior_erasures:
                # Erasures from before this seed (an interrupted one): ask per subject.
                live = [s for s in live if not self._erased(tx, s["subject"]["id"])]
            cells_: list[tuple[str, str, str, int, int, str]] = []
            restrictions: list[tuple[str, int, int, str]] = []
            seed_cells, seed_erased = _SEED_CELLS_BY_SYMBOL, self._seed_erased
            # In key order, each index page is visited once per batch, not once per row;
            # sorting the subjects, not their 7-odd rows each, costs a tenth.
            live.sort(key=_subject_id)
            for state in live:
                subject = state["subject"]["id"]
                if subject in seed_erased:
                    continue
                if state["restricted"]:
                    restrictions.append((subject, 1, _seed_ms(state["updated_at"]), "bootstrap"))
                # A choice limited to a partner is routed to that partner only.
                for entry in in_force(state["entries"], None):
                    covered = seed_cells.get(entry["purpose"])
                    if covered is None:
                        continue
                    suppressed = int(entry["choice"] == _WITHDRAWN)
                    at = _seed_ms(entry["occurred_at"])
                    event_id = entry["event_id"]
                    cells_.extend(
                        (subject, channel, purpose, suppressed, at, event_id)
                        for channel, purpose in covered
                    )
            tx.run_many(_UPSERT_RESTRICTION, restrictions)
            tx.run_many(_UPSERT_CELL, cells_)

    def mark_bootstrapped(self) -> None:
        """Record that the bootstrap finished (a crash before this bootstraps again)."""
        self._seed_erased.clear()
        self._prior_erasures = None
        # This FULL commit makes every seed commit before it durable too.
        self.database.bulk_load(False)
        with self.database.transaction() as tx:
            tx.run(
                "INSERT INTO store_meta (key, value) VALUES ('bootstrapped', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (utc_now().isoformat(),),
            )

    # -- questions -----------------------------------------------------------------

    def may_contact(self, subject_id: str, channel: Channel, purpose: Purpose) -> Decision:
        """Whether marketing may reach ``subject_id`` on ``channel`` for ``purpose``."""
        with self.database.reading() as tx:
            if self._erased(tx, subject_id):
                return Decision(False, "erased")
            restricted = tx.rows(
                "SELECT restricted FROM restrictions WHERE subject_id = ?", (subject_id,)
            )
            if restricted and restricted[0][0]:
                return Decision(False, "restricted")
            cell = tx.rows(
                "SELECT suppressed FROM suppressions"
                " WHERE subject_id = ? AND channel = ? AND purpose = ?",
                (subject_id, channel.value, purpose.value),
            )
            if cell and cell[0][0]:
                return Decision(False, "suppressed")
            kind = CHANNEL_ADDRESS.get(channel)
            contact = self._contact(tx, subject_id)
            address = contact.address(kind) if contact is not None and kind else None
            if address is not None and self._address_erased(tx, kind, address):
                return Decision(False, "address erased")
            return Decision(True, "granted" if cell else "not suppressed")

    def address_suppressed(self, kind: AddressKind, address: str) -> bool:
        """Whether ``address`` belonged to an erased person (and so stays suppressed)."""
        with self.database.reading() as tx:
            return self._address_erased(tx, kind, address)

    def _address_erased(self, tx: Executor, kind: AddressKind | None, address: str) -> bool:
        if kind is None:
            return False
        return bool(
            tx.rows(
                "SELECT 1 FROM erased_addresses WHERE address_hash = ?",
                (self._hash(kind, address),),
            )
        )

    # -- contacts and export ---------------------------------------------------------

    def upsert_contact(self, contact: Contact) -> None:
        """Insert or replace a person's contact data (the CRM's import)."""
        with self.database.transaction() as tx:
            tx.run(
                "INSERT INTO contacts (subject_id, email, phone, postal_address)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (subject_id) DO UPDATE SET"
                " email = excluded.email, phone = excluded.phone,"
                " postal_address = excluded.postal_address",
                (contact.subject_id, contact.email, contact.phone, contact.postal_address),
            )

    def contact(self, subject_id: str) -> Contact | None:
        """The contact data held for ``subject_id``, if any."""
        with self.database.reading() as tx:
            return self._contact(tx, subject_id)

    def _contact(self, tx: Executor, subject_id: str) -> Contact | None:
        rows = tx.rows(
            "SELECT email, phone, postal_address FROM contacts WHERE subject_id = ?",
            (subject_id,),
        )
        return Contact(subject_id, *rows[0]) if rows else None

    def export_rows(self) -> list[ExportRow]:
        """Suppressed (email, channel, purpose) cells, restrictions and erased emails."""
        with self.database.reading() as tx:
            cells_ = tx.rows(
                "SELECT c.email, s.channel, s.purpose, s.changed_at FROM suppressions s"
                " JOIN contacts c ON c.subject_id = s.subject_id"
                " WHERE s.suppressed = 1 AND c.email IS NOT NULL AND c.email <> ''"
            )
            restricted = tx.rows(
                "SELECT c.email, r.changed_at FROM restrictions r"
                " JOIN contacts c ON c.subject_id = r.subject_id"
                " WHERE r.restricted = 1 AND c.email IS NOT NULL AND c.email <> ''"
            )
            erased = tx.rows(
                "SELECT address_hash, erased_at FROM erased_addresses WHERE kind = ?",
                (AddressKind.EMAIL.value,),
            )
        email = AddressKind.EMAIL
        rows = [ExportRow(self._hash(email, e), c, p, from_ms(t)) for e, c, p, t in cells_]
        rows += [ExportRow(self._hash(email, e), "ALL", "ALL", from_ms(t)) for e, t in restricted]
        rows += [ExportRow(h, "ALL", "ALL", from_ms(t)) for h, t in erased]
        return sorted(rows, key=lambda r: (r.email_hash, r.channel, r.purpose))

    def close(self) -> None:
        """Close the database connection."""
        self.database.close()
