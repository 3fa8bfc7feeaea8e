"""Text for entity attributes, chosen to exercise CSV quoting and the formula guard.

About one name in six comes from a "hard" pool: commas, double quotes, newlines,
non-Latin scripts, emoji, and leading ``=``, ``+``, ``-``, ``@``, tab or carriage return.
Everything else is ordinary, so exports still look like a real workspace.
"""

from __future__ import annotations

import random

FIRST = (
    "Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Greta", "Hiroshi", "Ines", "Jonas",
    "Kateryna", "Liam", "Mia", "Noah", "Olga", "Pedro", "Qi", "Rania", "Sven", "Tomás",
    "Uma", "Viktor", "Wei", "Ximena", "Yusuf", "Zoë",
)  # fmt: skip
LAST = (
    "Müller", "Smith", "García", "Nguyen", "Kowalski", "Rossi", "Yamamoto", "Dubois",
    "Ñúñez", "O'Brien", "Schmidt", "Singh", "Andersson", "Haddad", "Novak", "Costa",
)  # fmt: skip
HARD_NAMES = (
    "Zoë Ñúñez", "李小龍", "山田 太郎", "Ólafur Þórsson", 'Renée "Rae" O\'Connor',
    "Smith, John", "Line\nBreak", "=SUM(A1:A9)", "+49 Hotline", "-Dash Doe", "@mention",
    "\tTabby Cat", "\rCarriage Return", "Σωκράτης Παππάς", "Владимир Иванов", "محمد علي",
    "🙂 Emoji Person", ", Leading Comma", '"Fully Quoted"', "Trailing Space ",
    "María-José Pérez, PhD", "김민준",
)  # fmt: skip
DOMAINS = ("example.com", "example.org", "acme.test", "müller.example")
HARD_EMAIL_PREFIXES = ("+", "-", "=", "@", "")
ROLES = ("member", "member", "member", "admin", "editor", "viewer", "owner")
LICENSES = ("business", "business", "enterprise", "payg", "free", "Pro, annual")
DEPARTMENTS = (
    "Engineering", "Sales, EMEA", 'R&D "Labs"', "Ops\nNight shift", "营销部", "=Finance",
    "Legal", "Support", "People & Culture", "-", "Data Science",
)  # fmt: skip
COMPANIES = (
    "Acme, Inc.", "Müller & Söhne GmbH", '"Quotes" Ltd', "株式会社テスト", "+Plus Corp",
    "-Minus LLC", "@Handle Co", "Globex", "Initech", "Umbrella plc",
)  # fmt: skip
AGENT_NAMES = (
    "Research Assistant", "Code Reviewer, v2", 'Sales "Closer" Bot', "翻訳アシスタント",
    "=IMPORTXML(A1)", "@helpdesk", "-Minimal", "+Growth Hacker", "Line\nBreak Agent",
    "Contract Analyst", "Onboarding Buddy", "SQL Helper", "Tickets Triage", "Zoë's Planner",
)  # fmt: skip
DESCRIPTIONS = (
    "Answers questions about our handbook.",
    "Reviews pull requests, suggests fixes, and explains them.",
    'Drafts outreach e-mails; tone: "friendly but firm".',
    "Multi-line\ndescription\nwith three lines",
    '=HYPERLINK("http://evil.example","click")',
    "Résumé screening — GDPR compliant ✅",
    "",
)
PROJECT_NAMES = (
    "Q3 Planning", "Website relaunch, phase 2", 'Project "Phoenix"', "年度报告",
    "=Budget 2026", "+Expansion", "-Cleanup", "@Launch", "Due diligence\nAcme", "Hiring",
)  # fmt: skip
KEY_NAMES = (
    "Zapier", "Internal ETL, prod", "=cmd|' /C calc'!A0", 'Dev key "local"', "Ключ API",
    "CI pipeline", "+staging", "Data warehouse sync", "@bot", "n8n\nworkflows",
)  # fmt: skip


def person_name(rng: random.Random) -> str:
    if rng.random() < 0.17:
        return rng.choice(HARD_NAMES)
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def email(rng: random.Random, index: int) -> str:
    local = f"user{index}"
    if rng.random() < 0.05:
        local = rng.choice(HARD_EMAIL_PREFIXES) + local
    return f"{local}@{rng.choice(DOMAINS)}"
