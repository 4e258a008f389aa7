"""The database schema, the same tables and columns on SQLite and PostgreSQL. Stable: others query it.

Created at start with `CREATE ... IF NOT EXISTS` (idempotent). On PostgreSQL everything lives in the
first schema of the connection's `search_path` (libpq `options=-csearch_path=S`).

Types: ids are UUIDs (`UUID` on PostgreSQL, text on SQLite); timestamps are `TIMESTAMPTZ` on PostgreSQL
and ISO 8601 UTC text (`2026-01-31T12:00:00.000000+00:00`, sortable) on SQLite; JSON columns are `JSONB`
on PostgreSQL and JSON text on SQLite. Every tenant-owned table has `organization_id`, and every read
and write of the service filters on it.

Tables (columns in order):

- `organizations`: `id`, `name`, `created_at`
- `users`: `id`, `organization_id`, `email` (unique, lower-cased), `full_name`, `password_hash`
  (`scrypt$<log2 N>$<r>$<p>$<salt hex>$<hash hex>`), `is_active`, `created_at`
- `business_profiles`: `id`, `organization_id`, `owner_id`, `company_name`, `industry`,
  `employee_count`, `revenue_range`, `location`, `description`, `data_processing` (JSON),
  `created_at`, `updated_at`
- `assessments`: `id`, `organization_id`, `owner_id`, `business_profile_id`, `assessment_type`,
  `frameworks_of_interest` (JSON list), `status` (`in_progress`, `completed`), `current_stage`,
  `total_stages`, `score`, `recommendations` (JSON list), `created_at`, `updated_at`, `completed_at`
- `assessment_responses`: `id`, `assessment_id`, `organization_id`, `question_id`, `response`,
  `details` (JSON), `stage`, `created_at`
- `frameworks` (shared reference data, not tenant-owned): `id`, `code` (`SOC2`, `ISO27001`, `GDPR`,
  `HIPAA`, `PCIDSS`, `NIST_CSF`, `CCPA`), `name`, `version`, `description`, `category`
- `framework_controls`: `id`, `framework_id`, `code` (`ISO27001.A.9.2.3`), `title`, `description`,
  `category`
- `evidence`: `row_id` (integer key, the full-text index's rowid), `id` (unique), `organization_id`,
  `owner_id`, `title`, `description`, `evidence_type` (document, screenshot, configuration,
  audit_log, policy, log_file, certificate, report, other), `source`, `status` (collected, pending,
  reviewed, approved, rejected, expired), `quality_score` (0..1 or null), `framework_mappings` (JSON
  list of control codes), `tags` (JSON list), `metadata` (JSON), `notes`, `created_at`, `updated_at`
- `evidence_frameworks`: `evidence_id`, `organization_id`, `framework` (the code before the first
  dot of each mapping: `ISO27001.A.9.2.3` -> `ISO27001`), `status` (a copy of the evidence's status);
  one row per (evidence, framework), kept in step with `evidence.framework_mappings` by the service
  and with `evidence.status` by a trigger (`evidence_status_copy`, so direct SQL updates of the status
  keep it right too), for framework filters and per-framework scores without a join
- full-text search: SQLite `evidence_fts`, an FTS5 external-content table (`title`, `description`,
  `tags`, `org`; rowid = `evidence.row_id`) over the view `evidence_fts_source`, kept in sync by
  triggers on `evidence`; `org` is the organisation id as one token (`o` + its 32 hex digits), so a
  search intersects the organisation's posting list instead of ranking every tenant's matches;
  PostgreSQL `evidence.search_vector`, a generated `tsvector` (title weight A, description B, tags C)
  with a GIN index
- `conversations`: `id`, `organization_id`, `user_id`, `title`, `context` (JSON), `created_at`,
  `updated_at`
- `messages`: `id`, `conversation_id`, `organization_id`, `seq` (order within the conversation),
  `role` (user, assistant), `content`, `citations` (JSON list), `prompt_tokens`,
  `completion_tokens`, `created_at`
- `reports`: `id` (the task id), `organization_id`, `user_id`, `report_type`, `format`,
  `parameters` (JSON request), `status` (pending, running, completed, failed), `progress` (0..100),
  `error`, `content` (the generated file, text), `content_type`, `created_at`, `started_at`,
  `completed_at`
- `audit_log`: `id`, `organization_id`, `user_id`, `action` (`evidence.create`, ...), `entity_type`,
  `entity_id`, `details` (JSON), `created_at`

Indexes a real deployment would have: evidence by (organization_id, status), (organization_id,
evidence_type), (organization_id, created_at), (organization_id, updated_at), (organization_id,
quality_score); evidence_frameworks by (organization_id, framework, status); users by organization;
messages by
(conversation_id, seq); conversations, messages, assessments, reports, profiles and audit_log by
(organization_id, created_at).
"""

from __future__ import annotations

_COMMON_INDEXES = """
CREATE INDEX IF NOT EXISTS ix_users_org ON users (organization_id);
CREATE INDEX IF NOT EXISTS ix_profiles_org ON business_profiles (organization_id, created_at);
CREATE INDEX IF NOT EXISTS ix_assessments_org ON assessments (organization_id, created_at);
CREATE INDEX IF NOT EXISTS ix_responses_assessment ON assessment_responses (assessment_id, created_at);
CREATE INDEX IF NOT EXISTS ix_controls_framework ON framework_controls (framework_id, code);
CREATE INDEX IF NOT EXISTS ix_evidence_org_status ON evidence (organization_id, status);
CREATE INDEX IF NOT EXISTS ix_evidence_org_type ON evidence (organization_id, evidence_type);
CREATE INDEX IF NOT EXISTS ix_evidence_org_created ON evidence (organization_id, created_at);
CREATE INDEX IF NOT EXISTS ix_evidence_org_updated ON evidence (organization_id, updated_at);
CREATE INDEX IF NOT EXISTS ix_evidence_org_quality ON evidence (organization_id, quality_score);
CREATE INDEX IF NOT EXISTS ix_evfw_org_framework ON evidence_frameworks (organization_id, framework, status);
CREATE INDEX IF NOT EXISTS ix_conversations_org ON conversations (organization_id, created_at);
CREATE INDEX IF NOT EXISTS ix_messages_conversation ON messages (conversation_id, seq);
CREATE INDEX IF NOT EXISTS ix_messages_org ON messages (organization_id, created_at);
CREATE INDEX IF NOT EXISTS ix_reports_org ON reports (organization_id, created_at);
CREATE INDEX IF NOT EXISTS ix_audit_org ON audit_log (organization_id, created_at);
"""


def _tables(uuid: str, ts: str, json: str, row_id: str, extra_evidence: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS organizations (
    id {uuid} PRIMARY KEY,
    name TEXT NOT NULL,
    created_at {ts} NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id {uuid} PRIMARY KEY,
    organization_id {uuid} NOT NULL REFERENCES organizations (id),
    email TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at {ts} NOT NULL
);
CREATE TABLE IF NOT EXISTS business_profiles (
    id {uuid} PRIMARY KEY,
    organization_id {uuid} NOT NULL REFERENCES organizations (id),
    owner_id {uuid} NOT NULL REFERENCES users (id),
    company_name TEXT NOT NULL,
    industry TEXT,
    employee_count INTEGER,
    revenue_range TEXT,
    location TEXT,
    description TEXT,
    data_processing {json},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE TABLE IF NOT EXISTS assessments (
    id {uuid} PRIMARY KEY,
    organization_id {uuid} NOT NULL REFERENCES organizations (id),
    owner_id {uuid} NOT NULL REFERENCES users (id),
    business_profile_id {uuid} REFERENCES business_profiles (id),
    assessment_type TEXT NOT NULL,
    frameworks_of_interest {json},
    status TEXT NOT NULL,
    current_stage INTEGER NOT NULL,
    total_stages INTEGER NOT NULL,
    score DOUBLE PRECISION,
    recommendations {json},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    completed_at {ts}
);
CREATE TABLE IF NOT EXISTS assessment_responses (
    id {uuid} PRIMARY KEY,
    assessment_id {uuid} NOT NULL REFERENCES assessments (id) ON DELETE CASCADE,
    organization_id {uuid} NOT NULL REFERENCES organizations (id),
    question_id TEXT NOT NULL,
    response TEXT,
    details {json},
    stage INTEGER NOT NULL,
    created_at {ts} NOT NULL
);
CREATE TABLE IF NOT EXISTS frameworks (
    id {uuid} PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    version TEXT,
    description TEXT,
    category TEXT
);
CREATE TABLE IF NOT EXISTS framework_controls (
    id {uuid} PRIMARY KEY,
    framework_id {uuid} NOT NULL REFERENCES frameworks (id),
    code TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT,
    category TEXT
);
CREATE TABLE IF NOT EXISTS evidence (
    row_id {row_id},
    id {uuid} NOT NULL UNIQUE,
    organization_id {uuid} NOT NULL REFERENCES organizations (id),
    owner_id {uuid} REFERENCES users (id),
    title TEXT NOT NULL,
    description TEXT,
    evidence_type TEXT NOT NULL,
    source TEXT,
    status TEXT NOT NULL,
    quality_score DOUBLE PRECISION,
    framework_mappings {json},
    tags {json},
    metadata {json},
    notes TEXT,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL{extra_evidence}
);
CREATE TABLE IF NOT EXISTS evidence_frameworks (
    evidence_id {uuid} NOT NULL REFERENCES evidence (id) ON DELETE CASCADE,
    organization_id {uuid} NOT NULL,
    framework TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (evidence_id, framework)
);
CREATE TABLE IF NOT EXISTS conversations (
    id {uuid} PRIMARY KEY,
    organization_id {uuid} NOT NULL REFERENCES organizations (id),
    user_id {uuid} NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    context {json},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id {uuid} PRIMARY KEY,
    conversation_id {uuid} NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    organization_id {uuid} NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    citations {json},
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    created_at {ts} NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    id {uuid} PRIMARY KEY,
    organization_id {uuid} NOT NULL REFERENCES organizations (id),
    user_id {uuid} NOT NULL REFERENCES users (id),
    report_type TEXT NOT NULL,
    format TEXT NOT NULL,
    parameters {json},
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    content TEXT,
    content_type TEXT,
    created_at {ts} NOT NULL,
    started_at {ts},
    completed_at {ts}
);
CREATE TABLE IF NOT EXISTS audit_log (
    id {uuid} PRIMARY KEY,
    organization_id {uuid} NOT NULL REFERENCES organizations (id),
    user_id {uuid},
    action TEXT NOT NULL,
    entity_type TEXT,
    entity_id TEXT,
    details {json},
    created_at {ts} NOT NULL
);
"""


SQLITE_CACHE_KIB = 4000
"""Page cache per SQLite connection, in KiB. Every worker thread holds its own connection and each
caches its own copy of the pages it reads, so at the default 24 threads the caches stay within ~96 MB
whatever the database size (32 MB each let them grow towards 768 MB as a load run grew the database).
A page missed here is read from the OS page cache, which all connections share."""

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA temp_store=MEMORY",
    f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}",
)

SQLITE_FTS = """
CREATE VIEW IF NOT EXISTS evidence_fts_source AS
    SELECT row_id, title, description, tags, 'o' || replace(organization_id, '-', '') AS org FROM evidence;
CREATE VIRTUAL TABLE IF NOT EXISTS evidence_fts USING fts5(
    title, description, tags, org,
    content='evidence_fts_source', content_rowid='row_id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS evidence_status_copy AFTER UPDATE OF status ON evidence BEGIN
    UPDATE evidence_frameworks SET status = new.status WHERE evidence_id = new.id;
END;
CREATE TRIGGER IF NOT EXISTS evidence_fts_insert AFTER INSERT ON evidence BEGIN
    INSERT INTO evidence_fts (rowid, title, description, tags, org)
    VALUES (new.row_id, new.title, new.description, new.tags, 'o' || replace(new.organization_id, '-', ''));
END;
CREATE TRIGGER IF NOT EXISTS evidence_fts_delete AFTER DELETE ON evidence BEGIN
    INSERT INTO evidence_fts (evidence_fts, rowid, title, description, tags, org)
    VALUES ('delete', old.row_id, old.title, old.description, old.tags,
            'o' || replace(old.organization_id, '-', ''));
END;
CREATE TRIGGER IF NOT EXISTS evidence_fts_update AFTER UPDATE OF title, description, tags ON evidence BEGIN
    INSERT INTO evidence_fts (evidence_fts, rowid, title, description, tags, org)
    VALUES ('delete', old.row_id, old.title, old.description, old.tags,
            'o' || replace(old.organization_id, '-', ''));
    INSERT INTO evidence_fts (rowid, title, description, tags, org)
    VALUES (new.row_id, new.title, new.description, new.tags, 'o' || replace(new.organization_id, '-', ''));
END;
"""


def org_token(org_id: str) -> str:
    """The organisation's single full-text token in `evidence_fts.org`."""
    return "o" + org_id.replace("-", "")


# Seeding drops the insert trigger, bulk-inserts, rebuilds the index once and puts the trigger back.
SQLITE_FTS_INSERT_TRIGGER = "evidence_fts_insert"

POSTGRES_SEARCH = """
CREATE INDEX IF NOT EXISTS ix_evidence_search ON evidence USING GIN (search_vector);
"""

# One statement each (split_statements would cut the function body at its semicolons).
POSTGRES_STATUS_COPY = (
    # SET search_path FROM CURRENT: the trigger finds its table whatever the updating session's path.
    """CREATE OR REPLACE FUNCTION evidence_status_copy() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE evidence_frameworks SET status = NEW.status WHERE evidence_id = NEW.id;
    RETURN NULL;
END $$""",
    """CREATE OR REPLACE TRIGGER evidence_status_copy AFTER UPDATE OF status ON evidence
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION evidence_status_copy()""",
)

_PG_SEARCH_COLUMN = """,
    search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(title, '')), 'A')
        || setweight(to_tsvector('english', coalesce(description, '')), 'B')
        || setweight(to_tsvector('english', coalesce(tags::text, '')), 'C')
    ) STORED"""


def sqlite_ddl() -> str:
    """Every statement creating the SQLite schema (tables, indexes, FTS5 table and triggers)."""
    return _tables("TEXT", "TEXT", "TEXT", "INTEGER PRIMARY KEY", "") + _COMMON_INDEXES + SQLITE_FTS


def postgres_ddl() -> str:
    """Every statement creating the PostgreSQL schema (tables, indexes, tsvector column and GIN index)."""
    return (
        _tables(
            "UUID",
            "TIMESTAMPTZ",
            "JSONB",
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            _PG_SEARCH_COLUMN,
        )
        + _COMMON_INDEXES
        + POSTGRES_SEARCH
    )


def split_statements(ddl: str) -> list[str]:
    """Statements of a DDL script, keeping trigger bodies (which contain `;`) whole."""
    out: list[str] = []
    buf: list[str] = []
    in_trigger = False
    for line in ddl.splitlines():
        if not line.strip():
            continue
        buf.append(line)
        if line.lstrip().upper().startswith("CREATE TRIGGER"):
            in_trigger = True
        if (in_trigger and line.strip().upper() == "END;") or (
            not in_trigger and line.rstrip().endswith(";")
        ):
            out.append("\n".join(buf).rstrip().rstrip(";"))
            buf = []
            in_trigger = False
    if buf:
        out.append("\n".join(buf))
    return out
