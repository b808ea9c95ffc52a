"""One place for settings: paths, run options and the pass-through of dbt vars.

Business thresholds are dbt vars (dbt_project/dbt_project.yml); this module only carries
user overrides of them to dbt, it never re-states a rule.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from keyaccounts.errors import InputError
from keyaccounts.ingest.contract import REJECT_THRESHOLD

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = Path(os.environ.get("KEYACCOUNTS_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"))
STATE_DIR = Path(os.environ.get("KEYACCOUNTS_STATE_DIR", PROJECT_ROOT / ".state"))

def shared_dir() -> Path:
    """The product's shared/ folder (spec, real sample data): $KEYACCOUNTS_SHARED_DIR, else beside
    the project, else beside the repository this clone came from (a clone in a temp folder)."""
    candidates = [os.environ.get("KEYACCOUNTS_SHARED_DIR"), PROJECT_ROOT.parent / "shared"]
    try:
        import subprocess

        origin = subprocess.run(["git", "-C", str(PROJECT_ROOT), "config", "--get", "remote.origin.url"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        if origin and "://" not in origin and ":" not in origin.split("/")[0]:
            candidates.append(Path(origin).resolve().parent / "shared")
    except (OSError, subprocess.SubprocessError):
        pass
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return PROJECT_ROOT.parent / "shared"


MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def parse_month(value: str, option: str = "--through") -> str:
    # fullmatch: `$` would also accept a trailing newline ("2024-05\n" from a script's variable)
    if not isinstance(value, str) or not MONTH_RE.fullmatch(value):
        raise InputError(f"{option} must be a month written YYYY-MM (e.g. 2024-06), got {value!r}")
    if value < "1900-01":
        raise InputError(f"{option} must be a month from 1900-01 on, got {value!r}")
    return value


def check_month_has_ended(month: str, time_zone: str, option: str = "--through") -> None:
    """metrics.md evaluates M as of the end of its last day: a month not over yet in the business time
    zone would publish a tier table of part of a month (every customer `inactive_90d` for a month years
    ahead) into a record that is never rewritten, and keep the marts there."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo(time_zone)).date()  # a name check_time_zone let through
    if month >= f"{today:%Y-%m}":
        raise InputError(f"{option} {month} has not ended yet (today is {today} in {time_zone}): a month is "
                         f"evaluated once its last day is over")


def add_months(month: str, n: int) -> str:
    """The month `n` months after `month` (YYYY-MM; n may be negative)."""
    year, mon = map(int, month.split("-"))
    index = year * 12 + mon - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_end(month: str) -> date:
    """end(M) of metrics.md: the last day of `month`."""
    return date.fromisoformat(add_months(month, 1) + "-01") - timedelta(days=1)


def project_vars() -> dict:
    """The dbt vars of dbt_project.yml with their defaults (every business threshold)."""
    import yaml

    return yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))["vars"]


def check_dbt_vars(dbt_vars: dict) -> None:
    """An override must name a var of dbt_project.yml: dbt ignores unknown ones, so a misspelt
    threshold (`grace_month=2`) would silently leave the default in force. Every var in force (as
    given, or as dbt_project.yml sets it) must then hold what it is for (a number, a month, a zone,
    one of a few words): the models write vars into SQL as they are, so a value can never be SQL."""
    import difflib

    known = project_vars()
    for name in sorted(set(dbt_vars) - set(known)):
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else "; the vars are those of dbt_project/dbt_project.yml"
        raise InputError(f"unknown dbt var {name!r}{hint}")
    effective = {**known, **dbt_vars}
    for name in sorted(effective):
        problem = _var_problem(name, effective[name], known[name])
        if problem:
            raise InputError(f"dbt var {name} {problem}, got {effective[name]!r}")
    a_line, b_line = effective["tier_a_share"], effective["tier_b_share"]
    if not 0 < a_line <= b_line <= 1:
        raise InputError(f"dbt vars tier_a_share and tier_b_share are lines on share_before: 0 < tier_a_share <= "
                         f"tier_b_share <= 1, got {a_line!r} and {b_line!r}")


# vars counted in whole months or days (the others are any finite number where the default is one)
WHOLE_NUMBER_VARS = {"window_months", "grace_months", "loyalty_tenure_cap_months", "risk_inactive_days",
                     "risk_complaints_recent_months", "risk_complaints_rising_min", "receivables_detail_months",
                     "forecast_lookback_months", "potential_history_months", "potential_min_history_months"}
# the least value of a count that the rules need (a window of no months has no meaning)
LEAST_VALUE = {"window_months": 1, "grace_months": 0, "loyalty_tenure_cap_months": 1, "risk_inactive_days": 1,
               "risk_complaints_recent_months": 1, "receivables_detail_months": 1, "forecast_lookback_months": 1,
               "potential_history_months": 1, "potential_min_history_months": 1}
CHOICE_VARS = {"value_basis": ("revenue", "gross_profit"), "potential_model": ("growth", "regression")}
IDENTIFIER_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _is_number(value) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _var_problem(name: str, value, default) -> str | None:
    """What is wrong with one var's value, or None."""
    if name == "through_month":
        return None if value is None or (isinstance(value, str) and MONTH_RE.fullmatch(value)) else \
            "must be a month YYYY-MM (keyaccounts sets it from --through)"
    if name in ("reporting_currency", "default_currency"):
        return None if isinstance(value, str) and CURRENCY_RE.fullmatch(value) else \
            "must be an ISO 4217 code of three capital letters (e.g. CNY, USD)"
    if name == "business_time_zone":
        check_time_zone(str(value), "business_time_zone")
        return None
    if name == "marts_schema":
        return None if isinstance(value, str) and IDENTIFIER_RE.fullmatch(value) else "must be a schema name"
    if name in CHOICE_VARS:
        return None if value in CHOICE_VARS[name] else f"must be one of {', '.join(CHOICE_VARS[name])}"
    if name == "scope_coefficients":
        ok = isinstance(value, dict) and all(isinstance(k, str) and k and _is_number(v) for k, v in value.items())
        return None if ok else "must map each scope to a number, e.g. {global: 1.2, national: 1.1, local: 1.0}"
    if name == "correction_bands":
        ok = isinstance(value, list) and value and all(
            isinstance(b, dict) and set(b) == {"min_rate", "coefficient"} and all(map(_is_number, b.values()))
            for b in value)
        return None if ok else "must be a list of {min_rate: number, coefficient: number}"
    if name == "forecast_horizons":
        ok = isinstance(value, list) and value and all(_is_number(h) and h == int(h) and h >= 1 for h in value)
        return None if ok else "must be a list of whole numbers of months of at least 1"
    if name == "receivables_detail_months" and value is None:
        return None  # every evaluation month
    if _is_number(default) or name in WHOLE_NUMBER_VARS:
        if not _is_number(value):
            return "must be a number"
        if name in WHOLE_NUMBER_VARS and value != int(value):
            return "must be a whole number"
        if value < LEAST_VALUE.get(name, value):
            return f"must be at least {LEAST_VALUE[name]}"
        return None
    return None if value == default else "cannot be changed"


# the options of a PostgreSQL warehouse URL a run passes on (to its own connections and to dbt's), and
# the environment variables that carry them to dbt (profiles.yml)
PG_TLS_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
PG_TLS_ENV = {option: f"KEYACCOUNTS_PG_{option.upper()}" for option in PG_TLS_OPTIONS}

TIME_ZONE_ENV = "KEYACCOUNTS_BUSINESS_TZ"


def business_time_zone_var(dbt_vars: dict) -> dict:
    """One business time zone for the schedules and the models: KEYACCOUNTS_BUSINESS_TZ (which the DAGs'
    schedules use) is also the models' `business_time_zone`, unless a run names that var itself."""
    zone = os.environ.get(TIME_ZONE_ENV)
    if not zone or "business_time_zone" in dbt_vars:
        return dbt_vars
    check_time_zone(zone, TIME_ZONE_ENV)
    return {**dbt_vars, "business_time_zone": zone}


def business_time_zone(dbt_vars: dict) -> str:
    """The zone in force: the run's var, else KEYACCOUNTS_BUSINESS_TZ, else dbt_project.yml's default."""
    return str(business_time_zone_var(dbt_vars).get("business_time_zone") or project_vars()["business_time_zone"])


CURRENCY_RE = re.compile(r"[A-Z]{3}")
ZONE_RE = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


def check_time_zone(name: str, option: str) -> None:
    """An IANA zone name Python knows (Asia/Shanghai, America/New_York, UTC). Anything else is refused:
    DuckDB stops on names it does not know, while PostgreSQL reads POSIX spellings such as `UTC+8` as
    eight hours *west* of UTC and abbreviations such as `CST` as fixed offsets, so the same inbox would
    give other dates on the two warehouses."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        known = bool(ZONE_RE.fullmatch(name)) and "/" in name or name == "UTC"
        if known:
            ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known:
        raise InputError(f"{option} must be an IANA time zone name such as Asia/Shanghai, America/New_York or "
                         f"UTC, got {name!r}")


# names DuckDB gives its own catalogs: dbt-duckdb names the warehouse's catalog after the file
RESERVED_CATALOGS = ("main", "temp", "system", "memory")


def check_warehouse_name(path: Path) -> None:
    """dbt-duckdb names the warehouse's catalog after the file's stem and writes it into SQL without
    escaping a quote (o'brien.duckdb failed in dbt's parser), and a stem DuckDB uses for its own
    catalogs (main.duckdb: 'Catalog "main" does not exist') cannot be attached: refused up front."""
    stem = path.stem
    if any(ch in stem for ch in "'\"`\\") or stem.lower() in RESERVED_CATALOGS:
        raise InputError(f"the warehouse file name {path.name!r} cannot be used: dbt-duckdb names the database "
                         f"after it, which must not contain quotes or be one of {', '.join(RESERVED_CATALOGS)} "
                         f"(e.g. warehouse.duckdb)")


@dataclass
class RunConfig:
    inbox: Path
    warehouse: Path | str  # a DuckDB file, or a postgresql:// URL
    through: str
    exports_dir: Path | None = None
    reject_threshold: float = REJECT_THRESHOLD
    dbt_vars: dict = field(default_factory=dict)  # overrides of dbt_project.yml vars
    run_id: str | None = None
    # orders, invoices and payments also from this PostgreSQL URL (credentials: env, never the repo)
    sql_source: str | None = None
    sql_schema: str | None = None  # None: public on PostgreSQL, else the source database's default
    # restating an already published month (a new version in marts.published_tiers)
    restate: bool = False
    restate_reason: str | None = None
    restated_by: str | None = None
    # rebuild the incremental staging models from raw (dbt --full-refresh), e.g. after an upgrade
    full_refresh: bool = False
    last_publish: object = field(default=None, repr=False)  # set by publish_task

    def check_restate(self) -> None:
        if self.restate and not (self.restate_reason and self.restated_by):
            raise InputError("--restate needs --reason and --by (who approved the restatement)")

    def __post_init__(self) -> None:
        from keyaccounts.warehouse import check_warehouse_text, is_postgres

        self.inbox = Path(self.inbox)
        try:
            check_warehouse_text(str(self.warehouse))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if isinstance(self.warehouse, str) and not is_postgres(self.warehouse) and self.warehouse.endswith(("/", os.sep)):
            # Path() would drop the slash and make a file of the folder the user named
            raise InputError(f"--warehouse {self.warehouse} names a folder: give the warehouse file, e.g. "
                             f"{self.warehouse.rstrip('/' + os.sep) or '.'}/warehouse.duckdb")
        self.warehouse = str(self.warehouse) if is_postgres(self.warehouse) else Path(self.warehouse)
        if not self.on_postgres:
            check_warehouse_name(self.warehouse)
        parse_month(self.through)
        check_dbt_vars(self.dbt_vars)
        self.dbt_vars = business_time_zone_var(self.dbt_vars)
        check_month_has_ended(self.through, self.business_time_zone)
        if self.exports_dir is None:
            if self.on_postgres:
                raise InputError("with a PostgreSQL warehouse, name the exports folder: --exports DIR")
            self.exports_dir = self.warehouse.parent / "exports"
        self.exports_dir = Path(self.exports_dir)
        if not 0 <= self.reject_threshold <= 1:
            raise InputError("the reject threshold is a share between 0 and 1")
        potential_model = str(self.dbt_vars.get("potential_model", "growth"))
        if potential_model not in ("growth", "regression"):
            raise InputError(f"potential_model must be growth or regression, got {potential_model!r}")
        if self.on_postgres and potential_model == "regression":
            # the regression potential is a dbt Python model: dbt-postgres cannot run it (docs/forecasts.md)
            raise InputError("potential_model=regression needs a DuckDB warehouse (its model is a dbt Python model, "
                             "which dbt-postgres cannot run); use the default potential_model=growth on PostgreSQL")
        self.check_restate()

    @property
    def business_time_zone(self) -> str:
        return business_time_zone(self.dbt_vars)

    @property
    def on_postgres(self) -> bool:
        return isinstance(self.warehouse, str)

    @property
    def dbt_state_dir(self) -> Path:
        """dbt target/logs for this warehouse, beside it (PostgreSQL: beside the exports), so runs
        on different warehouses don't mix."""
        if self.on_postgres:
            from keyaccounts.warehouse import pg_params

            pg = pg_params(self.warehouse)
            return self.exports_dir.parent / ".dbt" / f"pg-{pg['host']}-{pg['port']}-{pg['dbname']}"
        return self.warehouse.parent / ".dbt" / self.warehouse.stem


def check_environment() -> None:
    """Production mode (KEYACCOUNTS_ENV=production) refuses the documented demo salt: survey
    respondents' hashes would be reproducible by anyone who read the README."""
    if os.environ.get("KEYACCOUNTS_ENV", "").lower() == "production" and not os.environ.get("KEYACCOUNTS_PII_SALT"):
        raise InputError("KEYACCOUNTS_PII_SALT is not set: production mode needs a secret salt for survey "
                         "respondents' personal data (see README, Configuration)")
