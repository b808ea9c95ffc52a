"""The account-manager view (docs/programme.md): one CSV per account manager with their customers
of a published month (tier, programme package and its change, risk flags, the reason sentence),
an index of the files, and the per-manager section of the HTML report.

Like the tier export, it is written from the record (`marts.published_tiers`, the month's latest
version); the package comes from `marts.customer_programme_monthly` for the same customer, month
and tier, the interaction measures from `marts.customer_interactions_monthly`.

File names: `managers/<YYYY-MM>/<manager>.csv`. A manager's name is kept as it is (Chinese
included) when it is a safe file name; otherwise (path separators, control or reserved
characters, leading or trailing dots or spaces, a leading = + - or @ (a formula in `_index.csv`'s
cells), a reserved device name, longer than 120 bytes, a leading `_`, or two names that differ only
in case) the unsafe characters become `_` and
`~` + the first 8 hex digits of the name's SHA-256 are appended, so every manager has their own
file. Customers without an account manager are in `_unassigned.csv`; `_index.csv` maps every
manager to their file.
"""

from __future__ import annotations

import csv
import hashlib
import html
import re
from pathlib import Path

from keyaccounts.publish.exports import FORMULA_PREFIXES, neutralise_cell
from keyaccounts.publish.pending import PendingFiles, write_now
from keyaccounts.warehouse import has_table

UNASSIGNED = "_unassigned"
INDEX = "_index"
MAX_NAME_BYTES = 120
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}

COLUMNS = ["account_manager", "customer_id", "customer_name", "tier", "previous_tier", "tier_change",
           "package_code", "package_name", "package_change", "change_summary", "account_team",
           "response_time_hours", "visits_per_year", "discount_pct", "payment_terms_days", "risk_flags",
           "open_complaints", "complaints_12m", "visits_12m", "visits_expected_12m", "value_rank", "value_score",
           "reason"]
_PROGRAMME = ["package_code", "package_name", "package_change", "change_summary", "account_team",
              "response_time_hours", "visits_per_year", "discount_pct", "payment_terms_days"]
_INTERACTIONS = ["open_complaints", "complaints_12m", "visits_12m", "visits_expected_12m"]


def _plain_name(manager: str) -> str:
    name = _UNSAFE.sub("_", manager).strip(" .")
    if name.startswith(FORMULA_PREFIXES):
        # _index.csv lists the file name in a cell, where Excel would take it for a formula
        name = "_" + name[1:]
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        name = encoded[:MAX_NAME_BYTES].decode("utf-8", errors="ignore").strip(" .")
    return name or "manager"


def manager_file_names(managers) -> dict[str | None, str]:
    """manager (None: no account manager) -> file name (without the folder), unique per month."""
    names: dict[str | None, str] = {}
    plain = {m: _plain_name(m) for m in set(managers) if m is not None}
    folded: dict[str, int] = {}
    for name in plain.values():
        folded[name.casefold()] = folded.get(name.casefold(), 0) + 1
    for manager, name in plain.items():
        if (name != manager or name.startswith("_") or name.casefold() in _RESERVED
                or name.split(".")[0].casefold() in _RESERVED or folded[name.casefold()] > 1):
            name = f"{name}~{hashlib.sha256(manager.encode('utf-8')).hexdigest()[:8]}"
        names[manager] = name + ".csv"
    if None in set(managers):
        names[None] = UNASSIGNED + ".csv"
    return names


def manager_rows(conn, month: str) -> list[dict]:
    """The month's published customers with their package and interaction measures, sorted by
    manager (byte order, unassigned last), tier, value_rank (unranked last), customer_id."""
    # warehouses published before the programme existed lack its marts: those columns stay empty
    programme = has_table(conn, "marts", "customer_programme_monthly")
    interactions = has_table(conn, "marts", "customer_interactions_monthly")
    cols = ", ".join(
        [f"t.{c}" for c in ("account_manager", "customer_id", "customer_name", "tier", "previous_tier",
                            "tier_change")]
        + [f"p.{c}" if programme else f"null as {c}" for c in _PROGRAMME]
        + ["t.risk_flags"]
        + [f"i.{c}" if interactions else f"null as {c}" for c in _INTERACTIONS]
        + ["t.value_rank", "t.value_score", "t.reason"]
    )
    joins = ""
    if programme:
        joins += (" left join marts.customer_programme_monthly p on p.customer_id = t.customer_id "
                  "and p.eval_month = t.eval_month and p.tier = t.tier")
    if interactions:
        joins += (" left join marts.customer_interactions_monthly i on i.customer_id = t.customer_id "
                  "and i.eval_month = t.eval_month")
    cur = conn.execute(
        f"select {cols} from marts.published_tiers t{joins} where t.eval_month = ? and t.version = "
        "(select max(version) from marts.published_tiers where eval_month = ?)",
        [month, month],
    )
    names = [d[0] for d in cur.description]
    records = [dict(zip(names, r)) for r in cur.fetchall()]
    # sorted here, not in SQL: text order by bytes whatever the warehouse's collation
    records.sort(key=lambda r: (r["account_manager"] is None, (r["account_manager"] or "").encode(), r["tier"],
                                r["value_rank"] is None, r["value_rank"] or 0, r["customer_id"].encode()))
    return records


def _cell(value) -> object:
    return "" if value is None else neutralise_cell(value)


def export_managers(conn, month: str, out_dir: Path, pending: PendingFiles | None = None) -> Path:
    """Write managers/<month>/<manager>.csv (UTF-8 with BOM, formula cells neutralised) and
    _index.csv for the month's latest published version; return the month's folder. With
    `pending`, the files wait under temporary names in `out_dir` until the caller commits;
    files of managers no longer in the month are removed then."""
    if pending is None:
        return write_now(lambda p: export_managers(conn, month, out_dir, p))
    records = manager_rows(conn, month)
    names = manager_file_names([r["account_manager"] for r in records])
    folder = out_dir / "managers" / month
    out_dir.mkdir(parents=True, exist_ok=True)
    pending.sweep(out_dir, "managers_*.tmp")
    by_manager: dict[str | None, list[dict]] = {}
    for r in records:
        by_manager.setdefault(r["account_manager"], []).append(r)
    index = []
    for n, (manager, rows) in enumerate(by_manager.items()):
        file_name = names[manager]
        tmp = pending.temp_in(out_dir, f"managers_{month}_{n}.csv.tmp", folder / file_name)
        with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for r in rows:
                writer.writerow([_cell(r[c]) for c in COLUMNS])
        index.append([manager, file_name, len(rows), *(sum(r["tier"] == t for r in rows) for t in "ABC"),
                      sum(bool(r["risk_flags"]) for r in rows),
                      sum(r["package_change"] in ("upgraded", "downgraded") for r in rows)])
    tmp = pending.temp_in(out_dir, f"managers_{month}_index.csv.tmp", folder / f"{INDEX}.csv")
    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["account_manager", "file", "customers", "tier_a", "tier_b", "tier_c", "with_risk_flags",
                         "package_changes"])
        for row in index:
            writer.writerow([_cell(v) for v in row])
    keep = {INDEX + ".csv", *names.values()}

    def remove_stale() -> None:  # a manager who had customers in an earlier export of the month
        for stale in folder.glob("*.csv"):
            if stale.name not in keep and (stale.is_file() or stale.is_symlink()):
                stale.unlink(missing_ok=True)

    pending.after_commit(remove_stale)
    return folder


def _html_table(rows: list[dict], columns: list[str], headers: list[str]) -> str:
    if not rows:
        return "<p class='empty'>无 · none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r[c] is None else str(r[c]))}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def manager_section(conn, month: str, max_rows: int = 50) -> str:
    """The report's per-manager section: one summary line per manager, then each manager's
    customers (A first; at most `max_rows` shown, the export file has them all)."""
    records = manager_rows(conn, month)
    names = manager_file_names([r["account_manager"] for r in records])
    by_manager: dict[str | None, list[dict]] = {}
    for r in records:
        by_manager.setdefault(r["account_manager"], []).append(r)
    summary = []
    for manager, rows in by_manager.items():
        summary.append({
            "manager": manager or "（未分配 unassigned）", "customers": len(rows),
            **{t: sum(r["tier"] == t for r in rows) for t in "ABC"},
            "upgraded": sum(r["package_change"] == "upgraded" for r in rows),
            "downgraded": sum(r["package_change"] == "downgraded" for r in rows),
            "at_risk": sum(bool(r["risk_flags"]) for r in rows),
            "open_complaints": sum(r["open_complaints"] or 0 for r in rows)
            if any(r["open_complaints"] is not None for r in rows) else None,
        })
    parts = ["<h2>客户经理视图 Account managers</h2>",
             _html_table(summary, ["manager", "customers", "A", "B", "C", "upgraded", "downgraded", "at_risk",
                                   "open_complaints"],
                         ["客户经理 manager", "客户 customers", "A", "B", "C", "升级 upgraded", "降级 downgraded",
                          "有风险 with risk flags", "未结投诉 open complaints"])]
    for manager, rows in by_manager.items():
        shown = rows[:max_rows]
        more = (f"<p class='empty'>… {len(rows) - max_rows} more in managers/{html.escape(month)}/"
                f"{html.escape(names[manager])}</p>") if len(rows) > max_rows else ""
        parts.append(
            f"<details><summary>{html.escape(manager or '（未分配 unassigned）')} · {len(rows)}</summary>"
            + _html_table(shown, ["customer_id", "customer_name", "tier", "package_code", "package_change",
                                  "change_summary", "risk_flags", "reason"],
                          ["客户 ID", "客户名称", "等级", "服务包 package", "变动 change", "变动内容", "风险",
                           "原因 reason"])
            + more + "</details>")
    return "\n".join(parts)
