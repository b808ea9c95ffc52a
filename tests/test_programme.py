"""The key-account programme (docs/programme.md) on a small hand-built inbox, through 2024-06:
packages per industry and tier, the interactions feed and its measures, the two new risk flags,
and the account-manager exports. Every expected value is worked out by hand below.

Customers (all local, signed 2023-01-01; no invoices, so e = 1 and V = revenue_12m; no previous
revenue, so d = b). Evaluation months 2024-01 .. 2024-06 (earliest completed order: P2's).
- P2 retail, 王敏: order 2024-01-10 net 10000.        V 10000 every month.
- P5 energy, 刘洋: order 2024-01-15 net 5000.          V 5000 every month.
- P1 manufacturing, 王敏: order 2024-05-05 net 20000.  V 0 until April, 20000 from May.
- P3 (no industry, no manager) and P4 finance (manager "a/b:c"): no orders, V 0, C.
Jan..Apr: ranked P2 (share 0) and P5 (10000/15000 = 0.667): both A. P1, P3, P4: C.
May and June: P1 20000 (share 0, A), P2 (20000/35000 = 0.571, A), P5 (30000/35000 = 0.857, raw B).
So P1 is promoted C -> A in May (manufacturing-C -> manufacturing-A), P5 is held at A in May and
demoted to B in June (grace 1: energy-A -> energy-B).

Packages (seeds/programme_packages.csv): retail-A 12 visits/year; manufacturing-C 2, -A 12;
energy-A 12, -B 6; finance-C 1; P3 has no industry: default-C, 1 visit/year.

Interactions (Asia/Shanghai). The earliest is P4's complaint opened 2024-01-31T20:00Z = 2024-02-01
04:00 in Shanghai, so the feed covers 2024-02 on: every measure of 2024-01 is null.
- P2 complaints: C1 02-05 09:00 -> 02-06 09:00 (24 h); C2 04-01 08:00 -> 18:30 (10.5 h); C3 05-10 ->
  05-12 (48 h); C4 opened 06-03, closed 07-02 (after the cut-off); C5 opened 06-20, never closed (a
  stale re-delivery with an older updated_at saying it closed loses).
  June: 12m 5; recent (Apr-Jun) 4, prior (Jan-Mar) 1 -> complaints_rising (4 >= 2 and 4 > 1);
  open 2 (C4, C5); closed in W 3 -> median of 10.5, 24, 48 = 24.0.
  Visits 02-10, 03-10, 04-10, 05-10 and 2024-06-30T20:00Z (= 07-01 in Shanghai: outside June).
  June: visits 4; owed floor(6 months x 12 / 12) = 6 -> under_visited. Feb: 1 visit, owes 2 -> under_visited.
- P1: complaint 03-01 09:00 -> 10:15 (1.25 h -> 1.3, half away from zero), complaint 06-10 open,
  escalation 06-11, visits 05-20 and 06-15. June: 12m 2, recent 1 (< 2: not rising), prior 1,
  open 1, escalations 1, visits 2, owed floor((4 x 2 + 2 x 12) / 12) = 2 -> not under-visited.
- P5: complaints 02-03 (open in the first file, closed 14:00 the same day by an update: 4 h),
  02-04 -> 02-05 (24 h), 05-06 10:00 -> 16:00 (6 h), 05-07 10:00 -> 12:00 (2 h); visits on the 20th
  of Feb..Jun. June: 12m 4, recent 2, prior 2 (2 > 2 is false: not rising), open 0, median of
  2, 4, 6, 24 = 5.0; visits 5, owed floor((5 x 12 + 6) / 12) = 5 -> not under-visited.
- P4: the complaint above (02:00Z - 20:00Z = 6 h), and one opened 2024-03-10T10:00 (no offset:
  Shanghai, 02:00Z) "closed" 2024-03-10T01:00Z: before it was opened, a pair only staging can
  compare: held back (quarantine.held_back), counts nowhere. June: 12m 1, median 6.0.
- P3: nothing: covered months show 0 counts, a null median, owes floor(6 x 1 / 12) = 0.
Five bad rows are quarantined with their reasons.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from decimal import Decimal as D

import pytest

from conftest import one, rows, run, write_inbox
from keyaccounts.publish.managers import manager_file_names

TS = "2024-07-05T08:00:00+08:00"
LATER = "2024-07-06T08:00:00+08:00"
OLDER = "2024-06-25T08:00:00+08:00"
THROUGH = "2024-06"

INBOX = {
    "customers/part-0001.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        P1,甲制造,manufacturing,local,East,王敏,2023-01-01,{TS}
        P2,Beta Retail,retail,local,East,王敏,2023-01-01,{TS}
        P3,丙公司,,local,West,,2023-01-01,{TS}
        P4,Delta Finance,finance,local,North,a/b:c,2023-01-01,{TS}
        P5,戊能源,energy,local,West,刘洋,2023-01-01,{TS}
    """,
    "orders/part-0001.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-P2,P2,,2024-01-10,completed,CNY,10000,10000,,{TS}
        O-P5,P5,,2024-01-15,completed,CNY,5000,5000,,{TS}
        O-P1,P1,,2024-05-05,completed,CNY,20000,20000,,{TS}
    """,
    "interactions/part-0001.csv": f"""
        interaction_id,customer_id,kind,opened_at,closed_at,severity,channel,updated_at
        I-P4-1,P4,complaint,2024-01-31T20:00:00Z,2024-02-01T02:00:00Z,2,email,{TS}
        I-P4-MIX,P4,complaint,2024-03-10T10:00,2024-03-10T01:00:00Z,1,phone,{TS}
        I-P2-V1,P2,visit,2024-02-10T10:00:00+08:00,,,on_site,{TS}
        I-P2-V2,P2,visit,2024-03-10T10:00:00+08:00,,,on_site,{TS}
        I-P2-V3,P2,visit,2024-04-10T10:00:00+08:00,,,on_site,{TS}
        I-P2-V4,P2,visit,2024-05-10T10:00:00+08:00,,,on_site,{TS}
        I-P2-V5,P2,visit,2024-06-30T20:00:00Z,,,on_site,{TS}
        I-P2-C1,P2,complaint,2024-02-05T09:00:00+08:00,2024-02-06T09:00:00+08:00,2,phone,{TS}
        I-P2-C2,P2,complaint,2024-04-01T08:00:00+08:00,2024-04-01T18:30:00+08:00,1,phone,{TS}
        I-P2-C3,P2,complaint,2024-05-10T10:00:00+08:00,2024-05-12T10:00:00+08:00,3,email,{TS}
        I-P2-C4,P2,complaint,2024-06-03T10:00:00+08:00,2024-07-02T10:00:00+08:00,3,email,{TS}
        I-P2-C5,P2,complaint,2024-06-20T10:00:00+08:00,,2,phone,{TS}
        I-P1-C1,P1,complaint,2024-03-01T09:00:00+08:00,2024-03-01T10:15:00+08:00,1,phone,{TS}
        I-P1-C2,P1,complaint,2024-06-10T09:00:00+08:00,,1,phone,{TS}
        I-P1-E1,P1,escalation,2024-06-11T09:00:00+08:00,,3,email,{TS}
        I-P1-V1,P1,visit,2024-05-20T10:00:00+08:00,,,on_site,{TS}
        I-P1-V2,P1,visit,2024-06-15T10:00:00+08:00,,,on_site,{TS}
        I-P5-C1,P5,complaint,2024-02-03T10:00:00+08:00,,2,phone,{TS}
        I-P5-C2,P5,complaint,2024-02-04T10:00:00+08:00,2024-02-05T10:00:00+08:00,2,phone,{TS}
        I-P5-C3,P5,complaint,2024-05-06T10:00:00+08:00,2024-05-06T16:00:00+08:00,1,phone,{TS}
        I-P5-C4,P5,complaint,2024-05-07T10:00:00+08:00,2024-05-07T12:00:00+08:00,1,phone,{TS}
        I-P5-V1,P5,visit,2024-02-20T10:00:00+08:00,,,on_site,{TS}
        I-P5-V2,P5,visit,2024-03-20T10:00:00+08:00,,,on_site,{TS}
        I-P5-V3,P5,visit,2024-04-20T10:00:00+08:00,,,on_site,{TS}
        I-P5-V4,P5,visit,2024-05-20T10:00:00+08:00,,,on_site,{TS}
        I-P5-V5,P5,visit,2024-06-20T10:00:00+08:00,,,on_site,{TS}
        I-BAD-1,P2,call,2024-06-01T10:00:00+08:00,,,phone,{TS}
        I-BAD-2,P2,complaint,2024-06-01T10:00:00+08:00,,5,phone,{TS}
        I-BAD-3,P2,complaint,2024-06-02T10:00:00+08:00,2024-06-02T09:00:00+08:00,,phone,{TS}
        I-BAD-4,P2,complaint,,,,phone,{TS}
        I-BAD-5,P2,visit,2024-13-01T10:00:00+08:00,,,on_site,{TS}
    """,
    # an update closing P5's first complaint, and a stale re-delivery of P2's C5 that must lose
    "interactions/part-0002.csv": f"""
        interaction_id,customer_id,kind,opened_at,closed_at,severity,channel,updated_at
        I-P5-C1,P5,complaint,2024-02-03T10:00:00+08:00,2024-02-03T14:00:00+08:00,2,phone,{LATER}
        I-P2-C5,P2,complaint,2024-06-20T10:00:00+08:00,2024-06-21T10:00:00+08:00,2,phone,{OLDER}
    """,
}

MEASURES = ("complaints_12m", "complaints_recent", "complaints_prior", "open_complaints", "complaints_closed_12m",
            "median_hours_to_close", "escalations_12m", "visits_12m")
COLUMNS = ("interactions_covered",) + MEASURES + ("visits_per_year", "visits_expected_12m", "complaints_rising",
                                                  "under_visited")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The inbox with interactions, and the same inbox without the interactions folder."""
    root = tmp_path_factory.mktemp("programme")
    inbox = write_inbox(root / "inbox", INBOX)
    run(inbox, root / "wh" / "wh.duckdb", THROUGH, reject_threshold=1.0)
    bare = root / "bare-inbox"
    shutil.copytree(inbox, bare)
    shutil.rmtree(bare / "interactions")
    run(bare, root / "bare" / "wh.duckdb", THROUGH)
    return {"wh": root / "wh" / "wh.duckdb", "bare": root / "bare" / "wh.duckdb"}


def _ix(wh, customer, month=THROUGH):
    r = one(wh, f"select {', '.join(COLUMNS)} from marts.customer_interactions_monthly "
                "where customer_id = ? and eval_month = ?", [customer, month])
    return tuple(r[c] for c in COLUMNS)


def _flags(wh, customer, month=THROUGH):
    return one(wh, "select risk_flags from marts.customer_tier_monthly where customer_id = ? and eval_month = ?",
               [customer, month])["risk_flags"]


def test_interaction_measures_and_flags_june(built):
    wh = built["wh"]
    #                      covered 12m recent prior open closed median   esc visits per-year owed rising under
    assert _ix(wh, "P2") == (True, 5, 4, 1, 2, 3, D("24.0"), 0, 4, 12, 6, True, True)
    assert _ix(wh, "P1") == (True, 2, 1, 1, 1, 1, D("1.3"), 1, 2, 12, 2, False, False)
    assert _ix(wh, "P5") == (True, 4, 2, 2, 0, 4, D("5.0"), 0, 5, 6, 5, False, False)
    assert _ix(wh, "P4") == (True, 1, 0, 1, 0, 1, D("6.0"), 0, 0, 1, 0, False, False)
    assert _ix(wh, "P3") == (True, 0, 0, 0, 0, 0, None, 0, 0, 1, 0, False, False)


def test_interaction_measures_earlier_months(built):
    wh = built["wh"]
    # May: P2 complaints C1..C3, all closed by 05-12; recent (Mar-May) 2 > prior (Dec-Feb) 1: rising;
    # visits 4, owes floor(5 x 12 / 12) = 5
    assert _ix(wh, "P2", "2024-05") == (True, 3, 2, 1, 0, 3, D("24.0"), 0, 4, 12, 5, True, True)
    # February: one visit, owes 2; C1 closed on 02-06
    assert _ix(wh, "P2", "2024-02") == (True, 1, 1, 0, 0, 1, D("24.0"), 0, 1, 12, 2, False, True)
    # the update closed P5's C1 in February: nothing open (the first file alone would say 1)
    assert _ix(wh, "P5", "2024-02")[:7] == (True, 2, 2, 0, 0, 2, D("14.0"))  # median of 4 and 24
    # P1 promoted in May: owes floor((4 x 2 + 12) / 12) = 1 and had 1 visit
    assert _ix(wh, "P1", "2024-05")[-4:] == (12, 1, False, False)
    # the feed starts 2024-02-01 in Shanghai (P4's 2024-01-31T20:00Z): January is not covered
    for customer in ("P1", "P2", "P3", "P4", "P5"):
        jan = one(wh, "select * from marts.customer_interactions_monthly where customer_id = ? and eval_month = "
                      "'2024-01'", [customer])
        assert jan["interactions_covered"] is False
        assert all(jan[m] is None for m in MEASURES), jan
        assert jan["complaints_rising"] is False and jan["under_visited"] is False
    assert _ix(wh, "P2", "2024-01")[-4:] == (12, 1, False, False)  # owes floor(12 / 12) = 1, not flagged


def test_new_flags_come_after_the_existing_ones(built):
    wh = built["wh"]
    assert _flags(wh, "P2") == "inactive_90d,complaints_rising,under_visited"
    assert _flags(wh, "P2", "2024-02") == "under_visited"
    assert _flags(wh, "P1") == ""
    assert _flags(wh, "P5") == "inactive_90d"


def test_bad_interactions_quarantined_and_mixed_pair_held_back(built):
    wh = built["wh"]
    got = {r["interaction_id"]: r["_reason"] for r in rows(wh, "select interaction_id, _reason "
                                                               "from quarantine.interactions")}
    # the mixed pair, held back by the build, is listed there too (ingest.held_back)
    assert got == {"I-BAD-1": "not_allowed:kind", "I-BAD-2": "out_of_range:severity",
                   "I-BAD-3": "closed_before_opened", "I-BAD-4": "missing:opened_at",
                   "I-BAD-5": "bad_timestamp:opened_at", "I-P4-MIX": "closed_before_opened"}
    held = rows(wh, "select feed, record_id, customer_id, row_month, reason from quarantine.held_back "
                    "where feed = 'interactions'")
    assert held == [dict(feed="interactions", record_id="I-P4-MIX", customer_id="P4", row_month="2024-03",
                         reason="closed_before_opened")]
    # staging keeps the latest version per key: the update of I-P5-C1 won, the stale I-P2-C5 lost
    stg = {r["interaction_id"]: r for r in rows(wh, "select * from staging.stg_interactions")}
    assert len(stg) == 26
    assert str(stg["I-P5-C1"]["closed_on"]) == "2024-02-03" and stg["I-P2-C5"]["closed_at_utc"] is None
    assert str(stg["I-P4-1"]["opened_on"]) == "2024-02-01"


def test_promotion_and_demotion_change_the_package(built):
    wh = built["wh"]
    cols = ("tier", "previous_tier", "tier_change", "package_change", "package_code", "previous_package_code",
            "discount_pct", "previous_discount_pct", "payment_terms_days", "previous_payment_terms_days",
            "response_time_hours", "previous_response_time_hours", "visits_per_year", "previous_visits_per_year",
            "account_team", "previous_account_team", "change_summary")

    def programme(customer, month):
        r = one(wh, "select * from marts.customer_programme_monthly where customer_id = ? and eval_month = ?",
                [customer, month])
        return tuple(r[c] for c in cols)

    assert programme("P1", "2024-05") == (
        "A", "C", "promoted", "upgraded", "manufacturing-A", "manufacturing-C", D("10.00"), D("1.00"), 60, 30, 4, 48,
        12, 2, "dedicated", "pool",
        "manufacturing-C → manufacturing-A; discount 1.00% → 10.00%; payment terms 30 → 60 days; "
        "response 48 → 4 h; visits 2 → 12 per year; account team pool → dedicated.")
    assert programme("P1", "2024-06")[:6] == ("A", "A", "unchanged", "unchanged", "manufacturing-A",
                                              "manufacturing-A")
    assert programme("P1", "2024-06")[-1] is None
    # P5 held at A in May (package unchanged), demoted to B in June
    assert programme("P5", "2024-05")[:5] == ("A", "A", "held", "unchanged", "energy-A")
    assert programme("P5", "2024-06") == (
        "B", "A", "demoted", "downgraded", "energy-B", "energy-A", D("4.00"), D("8.00"), 60, 90, 24, 4, 6, 12,
        "shared", "dedicated",
        "energy-A → energy-B; discount 8.00% → 4.00%; payment terms 90 → 60 days; response 4 → 24 h; "
        "visits 12 → 6 per year; account team dedicated → shared.")
    first = one(wh, "select * from marts.customer_programme_monthly where customer_id = 'P2' and eval_month = '2024-01'")
    assert (first["package_change"], first["previous_package_code"], first["change_summary"]) == (
        "new", None, "First package: retail-A.")
    # no industry: the default row
    p3 = one(wh, "select industry, package_industry, package_code from marts.customer_programme_monthly "
                 "where customer_id = 'P3' and eval_month = ?", [THROUGH])
    assert p3 == dict(industry=None, package_industry="default", package_code="default-C")
    assert one(wh, "select count(*) as n from marts.customer_programme_monthly")["n"] == 5 * 6


def _read(path):
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_manager_exports(built):
    folder = built["wh"].parent / "exports" / "managers" / THROUGH
    hashed = "a_b_c~" + hashlib.sha256("a/b:c".encode()).hexdigest()[:8] + ".csv"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["王敏.csv", "刘洋.csv", hashed, "_unassigned.csv",
                                                                "_index.csv"])
    wang = _read(folder / "王敏.csv")
    assert [r["customer_id"] for r in wang] == ["P1", "P2"]  # tier A both, by value_rank
    p2 = wang[1]
    assert (p2["tier"], p2["package_code"], p2["package_change"], p2["discount_pct"], p2["risk_flags"],
            p2["open_complaints"], p2["visits_12m"], p2["visits_expected_12m"]) == (
        "A", "retail-A", "unchanged", "10.00", "inactive_90d,complaints_rising,under_visited", "2", "4", "6")
    assert p2["reason"].startswith("Stays A: raw tier A.")
    liu = _read(folder / "刘洋.csv")
    assert len(liu) == 1 and (liu[0]["customer_id"], liu[0]["tier"], liu[0]["previous_tier"], liu[0]["package_change"],
                              liu[0]["package_code"]) == ("P5", "B", "A", "downgraded", "energy-B")
    assert liu[0]["change_summary"].startswith("energy-A → energy-B; discount 8.00% → 4.00%")
    assert liu[0]["reason"].startswith("Demoted from A to B")
    assert [(r["customer_id"], r["account_manager"]) for r in _read(folder / "_unassigned.csv")] == [("P3", "")]
    assert [r["customer_id"] for r in _read(folder / hashed)] == ["P4"]
    index = {r["account_manager"]: r for r in _read(folder / "_index.csv")}
    assert index["王敏"] == dict(account_manager="王敏", file="王敏.csv", customers="2", tier_a="2", tier_b="0",
                               tier_c="0", with_risk_flags="1", package_changes="0")
    assert index["a/b:c"]["file"] == hashed and index[""]["file"] == "_unassigned.csv"
    assert index["刘洋"]["package_changes"] == "1"
    # the report has the per-manager section
    report = (built["wh"].parent / "exports" / f"report_{THROUGH}.html").read_text(encoding="utf-8")
    assert "客户经理视图 Account managers" in report and "a/b:c" in report and "manufacturing-A" in report


def test_export_command_rewrites_manager_files_and_drops_stale_ones(built, tmp_path, capsys):
    """`keyaccounts export` writes the manager files as the publish did; a manager who has no
    customer in the month any more loses their file of that month; other months are not touched."""
    from keyaccounts.cli import main

    out = tmp_path / "out"
    other_month = out / "managers" / "2024-05" / "离职经理.csv"
    other_month.parent.mkdir(parents=True)
    other_month.write_text("old", encoding="utf-8")
    args = ["export", "--warehouse", str(built["wh"]), "--month", THROUGH, "--out", str(out)]
    assert main(args) == 0
    folder = out / "managers" / THROUGH
    assert f"export: {folder}" in capsys.readouterr().out
    published = built["wh"].parent / "exports" / "managers" / THROUGH
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {p.name: p.read_bytes() for p in published.iterdir()}
    (folder / "离职经理.csv").write_text("old", encoding="utf-8")
    assert main(args) == 0
    assert not (folder / "离职经理.csv").exists() and (folder / "王敏.csv").exists()
    assert other_month.exists()
    assert not list(out.rglob("*.tmp"))


def test_without_interactions_folder_measures_null_and_everything_else_the_same(built):
    wh, bare = built["wh"], built["bare"]
    ix = rows(bare, "select * from marts.customer_interactions_monthly")
    assert len(ix) == 5 * 6
    assert all(r["interactions_covered"] is False and not r["complaints_rising"] and not r["under_visited"]
               and all(r[m] is None for m in MEASURES) for r in ix)
    assert rows(bare, "select count(*) as n from raw.interactions") == [{"n": 0}]

    def tiers(w, strip_new=False):
        out = rows(w, "select * from marts.customer_tier_monthly order by customer_id, eval_month")
        for r in out:
            if strip_new:
                r["risk_flags"] = ",".join(f for f in r["risk_flags"].split(",")
                                           if f and f not in ("complaints_rising", "under_visited"))
        return out

    assert tiers(bare) == tiers(wh, strip_new=True)
    assert _flags(bare, "P2") == "inactive_90d"
    for table in ("customer_programme_monthly", "customer_value_monthly", "tier_summary_monthly"):
        sql = f"select * from marts.{table} order by all"
        assert rows(bare, sql) == rows(wh, sql), table
    assert (bare.parent / "exports" / "managers" / THROUGH / "王敏.csv").exists()


@pytest.mark.parametrize("managers, expected", [
    (["王敏", "Zhang Wei"], {"王敏": "王敏.csv", "Zhang Wei": "Zhang Wei.csv"}),
    ([None], {None: "_unassigned.csv"}),
])
def test_manager_file_names_plain(managers, expected):
    assert manager_file_names(managers) == expected


def test_manager_file_names_made_safe_and_unique():
    def h(name):
        return hashlib.sha256(name.encode()).hexdigest()[:8]

    names = manager_file_names(["../etc", "..", "a\\b", "_unassigned", "CON", "Li", "LI", "x" * 200, "=cmd|' /C'",
                                "@SUM(1)"])
    assert names["../etc"] == f"_etc~{h('../etc')}.csv"
    assert names[".."] == f"manager~{h('..')}.csv"
    assert names["a\\b"] == f"a_b~{h('a' + chr(92) + 'b')}.csv"
    assert names["_unassigned"] == f"_unassigned~{h('_unassigned')}.csv"  # never the file of unassigned customers
    assert names["CON"] == f"CON~{h('CON')}.csv"
    assert names["Li"] != names["LI"] and names["Li"].casefold() != names["LI"].casefold()
    assert len(names["x" * 200].encode()) <= 120 + 14
    # a leading formula character too: _index.csv lists the name in a cell, where it must stay a name
    assert names["=cmd|' /C'"] == f"_cmd_' _C'~{h(chr(61) + 'cmd|' + chr(39) + ' /C' + chr(39))}.csv"
    assert names["@SUM(1)"] == f"_SUM(1)~{h('@SUM(1)')}.csv"
    assert len(set(names.values())) == len(names)
    assert all("/" not in n and "\\" not in n and n not in (".", "..") for n in names.values())
