"""The compliance frameworks and their controls: shared reference data, installed at start.

Ids are UUID5 of the code, so they are the same on every run and every database. A handful of real
control identifiers per framework is enough for mappings, filters, scores and recommendations.
"""

from __future__ import annotations

import uuid
from typing import Any

from reference_backend.db import Database

_NS = uuid.UUID("5d1f8a8e-3c41-4b8a-9a64-7b0c3f1e2d10")

FRAMEWORKS: list[dict[str, Any]] = [
    {
        "code": "SOC2",
        "name": "SOC 2",
        "version": "2017 TSC",
        "category": "security",
        "description": "AICPA Trust Services Criteria for security, availability and confidentiality.",
        "controls": [
            ("SOC2.CC1.1", "Integrity and ethical values", "governance"),
            ("SOC2.CC6.1", "Logical access security", "access_control"),
            ("SOC2.CC6.2", "User registration and authorisation", "access_control"),
            ("SOC2.CC6.6", "Boundary protection", "network"),
            ("SOC2.CC7.2", "Security event monitoring", "operations"),
            ("SOC2.CC8.1", "Change management", "operations"),
            ("SOC2.A1.2", "Backup and recovery", "availability"),
        ],
    },
    {
        "code": "ISO27001",
        "name": "ISO/IEC 27001",
        "version": "2013",
        "category": "security",
        "description": "Information security management systems, Annex A controls.",
        "controls": [
            ("ISO27001.A.5.1.1", "Policies for information security", "governance"),
            ("ISO27001.A.8.1.1", "Inventory of assets", "asset_management"),
            ("ISO27001.A.9.2.3", "Management of privileged access rights", "access_control"),
            ("ISO27001.A.9.4.2", "Secure log-on procedures", "access_control"),
            ("ISO27001.A.12.3.1", "Information backup", "operations"),
            ("ISO27001.A.12.4.1", "Event logging", "operations"),
            ("ISO27001.A.16.1.2", "Reporting information security events", "incident_management"),
            ("ISO27001.A.18.1.4", "Privacy and protection of personal data", "compliance"),
        ],
    },
    {
        "code": "GDPR",
        "name": "GDPR",
        "version": "2016/679",
        "category": "privacy",
        "description": "EU General Data Protection Regulation.",
        "controls": [
            ("GDPR.ART.5", "Principles relating to processing of personal data", "principles"),
            ("GDPR.ART.25", "Data protection by design and by default", "privacy_engineering"),
            ("GDPR.ART.30", "Records of processing activities", "records"),
            ("GDPR.ART.32", "Security of processing", "security"),
            ("GDPR.ART.33", "Notification of a personal data breach", "incident_management"),
            ("GDPR.ART.35", "Data protection impact assessment", "risk"),
        ],
    },
    {
        "code": "HIPAA",
        "name": "HIPAA Security Rule",
        "version": "45 CFR 164",
        "category": "healthcare",
        "description": "US safeguards for electronic protected health information.",
        "controls": [
            ("HIPAA.164.308.A.1", "Security management process", "administrative"),
            ("HIPAA.164.308.A.5", "Security awareness and training", "administrative"),
            ("HIPAA.164.310.D.1", "Device and media controls", "physical"),
            ("HIPAA.164.312.A.1", "Access control", "technical"),
            ("HIPAA.164.312.B", "Audit controls", "technical"),
            ("HIPAA.164.312.E.1", "Transmission security", "technical"),
        ],
    },
    {
        "code": "PCIDSS",
        "name": "PCI DSS",
        "version": "4.0",
        "category": "payments",
        "description": "Payment Card Industry Data Security Standard.",
        "controls": [
            ("PCIDSS.1.2", "Network security controls are configured", "network"),
            ("PCIDSS.3.5", "Stored account data is protected", "data_protection"),
            ("PCIDSS.8.3", "Strong authentication for users", "access_control"),
            ("PCIDSS.10.2", "Audit logs are implemented", "operations"),
            ("PCIDSS.11.3", "Vulnerabilities are identified and addressed", "vulnerability_management"),
        ],
    },
    {
        "code": "NIST_CSF",
        "name": "NIST Cybersecurity Framework",
        "version": "2.0",
        "category": "security",
        "description": "Govern, identify, protect, detect, respond, recover.",
        "controls": [
            ("NIST_CSF.GV.OC", "Organizational context", "govern"),
            ("NIST_CSF.ID.AM", "Asset management", "identify"),
            ("NIST_CSF.PR.AA", "Identity management and access control", "protect"),
            ("NIST_CSF.DE.CM", "Continuous monitoring", "detect"),
            ("NIST_CSF.RS.MA", "Incident management", "respond"),
            ("NIST_CSF.RC.RP", "Incident recovery plan execution", "recover"),
        ],
    },
    {
        "code": "CCPA",
        "name": "CCPA / CPRA",
        "version": "2023",
        "category": "privacy",
        "description": "California Consumer Privacy Act as amended by the CPRA.",
        "controls": [
            ("CCPA.1798.100", "Right to know about personal information collected", "consumer_rights"),
            ("CCPA.1798.105", "Right to delete", "consumer_rights"),
            ("CCPA.1798.120", "Right to opt out of sale or sharing", "consumer_rights"),
            ("CCPA.1798.150", "Reasonable security procedures", "security"),
        ],
    },
]

CODES = tuple(f["code"] for f in FRAMEWORKS)
BY_CODE = {f["code"]: f for f in FRAMEWORKS}
ALL_CONTROLS = tuple(c[0] for f in FRAMEWORKS for c in f["controls"])


def framework_id(code: str) -> str:
    return str(uuid.uuid5(_NS, code))


def install(db: Database) -> None:
    """Insert the frameworks and controls once; a second start finds them and does nothing."""
    if db.scalar("SELECT count(*) FROM frameworks") == len(FRAMEWORKS):
        return
    with db.transaction():
        if db.dialect == "postgres":
            db.scalar("SELECT pg_advisory_xact_lock(727373)")  # two backends starting on one database
        for f in FRAMEWORKS:
            fid = framework_id(f["code"])
            if db.scalar("SELECT count(*) FROM frameworks WHERE id = ?", (fid,)):
                continue
            db.execute(
                "INSERT INTO frameworks (id, code, name, version, description, category)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (fid, f["code"], f["name"], f["version"], f["description"], f["category"]),
            )
            db.executemany(
                "INSERT INTO framework_controls (id, framework_id, code, title, description, category)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (str(uuid.uuid5(_NS, code)), fid, code, title, f"{f['name']}: {title}.", category)
                    for code, title, category in f["controls"]
                ],
            )
