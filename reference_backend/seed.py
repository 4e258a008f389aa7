"""Realistic data sets: `python -m reference_backend seed` and the `--demo-data` organisation.

Faker with a fixed seed writes the text pools once (a few thousand phrases); rows are then assembled
from the pools with a seeded `random.Random`, which is what makes 100k evidence rows take seconds
rather than minutes. Rows go in with executemany in large transactions; on SQLite the full-text
index is rebuilt once at the end instead of row by row by its trigger.

Every seeded user's password is `DEMO_PASSWORD`, a fixed, published demo value (not a secret): the
data set exists to be logged into by load tests.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reference_backend import frameworks as fw
from reference_backend import schema
from reference_backend.db import Database, now_iso
from reference_backend.routes_evidence import COLUMNS as EVIDENCE_COLUMNS
from reference_backend.routes_evidence import EVIDENCE_STATUSES, EVIDENCE_TYPES, frameworks_of
from reference_backend.routes_evidence import FW_INSERT as _FW_INSERT
from reference_backend.security import hash_password
from reference_backend.settings import Settings

DEMO_PASSWORD = "demo-password-123"
DEMO_EMAIL = "demo@example.com"
BATCH = 5000
TX_ROWS = 25_000

STATUSES = EVIDENCE_STATUSES
STATUS_WEIGHTS = (25, 15, 20, 30, 5, 5)  # one per status, in EVIDENCE_STATUSES' order
TYPES = tuple(t for t in EVIDENCE_TYPES if t != "other")  # seeded data is always typed
SOURCES = ("manual", "aws_config", "okta", "github", "jira", "google_workspace", "azure_ad", "datadog")
TOPICS = (
    "access review",
    "encryption at rest",
    "backup restore test",
    "incident response plan",
    "vulnerability scan",
    "security awareness training",
    "change management approval",
    "firewall configuration",
    "password policy",
    "data retention policy",
    "vendor risk assessment",
    "privileged access audit",
    "penetration test report",
    "business continuity plan",
    "MFA enforcement",
    "logging and monitoring",
)
KINDS = ("Quarterly", "Annual", "Monthly", "Weekly", "Ad hoc", "Q3", "Q4", "2026")
TAGS = ("security", "privacy", "access", "encryption", "backup", "audit", "hr", "network", "cloud", "vendor")


class SeedError(RuntimeError):
    """Seeding could not proceed; the message says why and what to change."""


@dataclass
class Pools:
    sentences: list[str]
    companies: list[str]
    names: list[tuple[str, str]]

    @classmethod
    def build(cls, seed: int, size: int = 3000) -> Pools:
        from faker import Faker

        fake = Faker("en_US")
        fake.seed_instance(seed)
        return cls(
            sentences=[fake.sentence(nb_words=12) for _ in range(size)],
            companies=[fake.company() for _ in range(200)],
            names=[(fake.first_name(), fake.last_name()) for _ in range(500)],
        )


class Progress:
    """A one-line progress bar on stderr (a no-op when disabled)."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, max(total, 1), enabled
        self.start = time.perf_counter()
        self.done = 0
        self.update(0)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        sys.stderr.write(
            f"\r{self.label:<10} [{bar:<30}] {frac:6.1%} {self.done}/{self.total}"
            f" {time.perf_counter() - self.start:6.1f} s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ts(base: dt.datetime, seconds_ago: float) -> str:
    return (base - dt.timedelta(seconds=seconds_ago)).isoformat(timespec="microseconds")


def evidence_rows(
    rng: random.Random, pools: Pools, org_id: str, owners: list[str], n: int, base: dt.datetime
) -> Iterator[tuple[tuple[Any, ...], list[str]]]:
    """(evidence row in `EVIDENCE_COLUMNS` order, its frameworks) for n realistic evidence items."""
    for _ in range(n):
        topic = rng.choice(TOPICS)
        mappings = rng.sample(fw.ALL_CONTROLS, rng.randint(1, 3))
        tags = rng.sample(TAGS, rng.randint(1, 3))
        created = rng.uniform(0, 365 * 86400)
        updated = rng.uniform(0, created)
        status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
        description = f"{topic.capitalize()} evidence. " + " ".join(rng.sample(pools.sentences, 2))
        row = (
            _uuid(rng),
            org_id,
            rng.choice(owners),
            f"{rng.choice(KINDS)} {topic} - {rng.choice(SOURCES).replace('_', ' ')}",
            description,
            rng.choice(TYPES),
            rng.choice(SOURCES),
            status,
            round(rng.uniform(0.3, 1.0), 3) if rng.random() < 0.9 else None,
            json.dumps(mappings),
            json.dumps(tags),
            json.dumps({"collector": "seed", "size_kb": rng.randint(1, 5000)}),
            None,
            _ts(base, created),
            _ts(base, updated),
        )
        yield row, frameworks_of(mappings)


_EVIDENCE_INSERT = f"INSERT INTO evidence ({EVIDENCE_COLUMNS}) VALUES ({', '.join('?' * 15)})"


def _insert_evidence(
    db: Database,
    rng: random.Random,
    pools: Pools,
    plan: list[tuple[str, list[str], int]],
    progress: Progress,
) -> None:
    base = dt.datetime.now(dt.UTC)
    fast_fts = db.dialect == "sqlite" and sum(n for *_, n in plan) >= 2000
    if fast_fts:
        db.execute(f"DROP TRIGGER IF EXISTS {schema.SQLITE_FTS_INSERT_TRIGGER}")
    try:
        pending = 0
        rows: list[tuple[Any, ...]] = []
        fw_rows: list[tuple[str, str, str, str]] = []

        def flush() -> None:
            db.executemany(_EVIDENCE_INSERT, rows)
            db.executemany(_FW_INSERT, fw_rows)
            progress.update(len(rows))
            rows.clear()
            fw_rows.clear()

        for org_id, owners, n in plan:
            left = n
            while left:
                chunk = min(left, TX_ROWS)
                with db.transaction():
                    for row, fws in evidence_rows(rng, pools, org_id, owners, chunk, base):
                        rows.append(row)
                        fw_rows.extend((row[0], org_id, f, row[7]) for f in fws)
                        pending += 1
                        if len(rows) >= BATCH:
                            flush()
                    if rows:
                        flush()
                left -= chunk
    finally:
        if fast_fts:
            # Rebuild the index once from the content table, then restore the per-row trigger.
            db.execute("INSERT INTO evidence_fts (evidence_fts) VALUES ('rebuild')")
            for stmt in schema.split_statements(schema.SQLITE_FTS):
                if schema.SQLITE_FTS_INSERT_TRIGGER in stmt.split("\n")[0]:
                    db.execute(stmt)


def _org_with_users(
    db: Database, rng: random.Random, pools: Pools, name: str, emails: list[str], password_hash: str
) -> tuple[str, list[str]]:
    org_id, now = _uuid(rng), now_iso()
    db.execute("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)", (org_id, name, now))
    users = []
    for email in emails:
        first, last = rng.choice(pools.names)
        uid = _uuid(rng)
        db.execute(
            "INSERT INTO users (id, organization_id, email, full_name, password_hash, is_active, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (uid, org_id, email, f"{first} {last}", password_hash, True, now),
        )
        users.append(uid)
    industry = rng.choice(("software", "healthcare", "fintech", "retail", "manufacturing"))
    db.execute(
        "INSERT INTO business_profiles (id, organization_id, owner_id, company_name, industry,"
        " employee_count,"
        " revenue_range, location, description, data_processing, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            _uuid(rng),
            org_id,
            users[0],
            name,
            industry,
            rng.choice((12, 45, 180, 600, 2500)),
            rng.choice(("<1M", "1M-10M", "10M-50M", "50M+")),
            rng.choice(("London, UK", "Berlin, Germany", "San Francisco, California", "New York, USA")),
            rng.choice(pools.sentences),
            json.dumps({"personal_data": True, "payment_cards": industry in ("fintech", "retail")}),
            now,
            now,
        ),
    )
    return org_id, users


def run_seed(
    url: str, orgs: int, users_per_org: int, evidence: int, seed: int = 42, progress: bool = True
) -> dict[str, Any]:
    """Seed a database; returns counts, timing and one user's credentials (the demo password)."""
    start = time.perf_counter()
    db = Database(url)
    try:
        db.create_schema()
        fw.install(db)
        rng = random.Random(seed)
        pools = Pools.build(seed)
        password_hash = hash_password(DEMO_PASSWORD, Settings().kdf_cost)
        plan: list[tuple[str, list[str], int]] = []
        first_email = ""
        per_org = [evidence // orgs + (1 if i < evidence % orgs else 0) for i in range(orgs)]
        bar = Progress("orgs", orgs, progress)
        with db.transaction():
            for o in range(orgs):
                company = rng.choice(pools.companies)
                domain = "".join(ch for ch in company.lower() if ch.isalnum())[:20] or "example"
                emails = [
                    f"user{u + 1}.org{o + 1}.s{seed}@{domain}.example.com" for u in range(users_per_org)
                ]
                first_email = first_email or emails[0]
                if o == 0 and db.scalar("SELECT count(*) FROM users WHERE email = ?", (emails[0],)):
                    raise SeedError(
                        f"the database already holds data of seed {seed} ({emails[0]}); use another --seed"
                        " or a fresh database"
                    )
                org_id, users = _org_with_users(db, rng, pools, company, emails, password_hash)
                plan.append((org_id, users, per_org[o]))
                bar.update(1)
        bar.close()
        bar = Progress("evidence", evidence, progress)
        _insert_evidence(db, rng, pools, plan, bar)
        bar.close()
        if db.dialect == "postgres":
            db.execute("ANALYZE")
        else:
            db.execute("PRAGMA optimize")
        return {
            "database_url": db.public_url,
            "organizations": orgs,
            "users": orgs * users_per_org,
            "evidence": evidence,
            "seconds": round(time.perf_counter() - start, 2),
            "email": first_email,
            "password": DEMO_PASSWORD,
            "organization_id": plan[0][0] if plan else None,
        }
    finally:
        db.close()


def seed_demo(db: Database, settings: Settings) -> dict[str, Any]:
    """The `--demo-data` organisation: user `DEMO_EMAIL` / `DEMO_PASSWORD` and its evidence. Idempotent."""
    if db.scalar("SELECT count(*) FROM users WHERE email = ?", (DEMO_EMAIL,)):
        return {"email": DEMO_EMAIL, "created": False}
    rng = random.Random(0)
    pools = Pools.build(0, size=500)
    with db.transaction():
        org_id, users = _org_with_users(
            db,
            rng,
            pools,
            "Demo Compliance Co",
            [DEMO_EMAIL],
            hash_password(DEMO_PASSWORD, settings.kdf_cost),
        )
    _insert_evidence(db, rng, pools, [(org_id, users, settings.demo_evidence)], Progress("demo", 1, False))
    print(f"Demo user: {DEMO_EMAIL} / {DEMO_PASSWORD} (fixed demo password)", flush=True)
    return {"email": DEMO_EMAIL, "created": True, "organization_id": org_id}
