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
    threshold (`grace_month=2`) would silently leave the default in force. The two text vars the
    models write into SQL as literals are checked for what they are, so a value can never be SQL: as
    given, or as dbt_project.yml sets them."""
    import difflib

    known = project_vars()
    for name in sorted(set(dbt_vars) - set(known)):
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else "; the vars are those of dbt_project/dbt_project.yml"
        raise InputError(f"unknown dbt var {name!r}{hint}")
    effective = {**known, **dbt_vars}
    if not CURRENCY_RE.fullmatch(str(effective["reporting_currency"])):
        raise InputError(f"reporting_currency must be an ISO 4217 code of three capital letters (e.g. CNY, USD), "
                         f"got {effective['reporting_currency']!r}")
    check_time_zone(str(effective["business_time_zone"]), "business_time_zone")


TIME_ZONE_ENV = "KEYACCOUNTS_BUSINESS_TZ"


def business_time_zone_var(dbt_vars: dict) -> dict:
    """One business time zone for the schedules and the models: KEYACCOUNTS_BUSINESS_TZ (which the DAGs'
    schedules use) is also the models' `business_time_zone`, unless a run names that var itself."""
    zone = os.environ.get(TIME_ZONE_ENV)
    if not zone or "business_time_zone" in dbt_vars:
        return dbt_vars
    check_time_zone(zone, TIME_ZONE_ENV)
    return {**dbt_vars, "business_time_zone": zone}


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
    reject_threshold: float = 0.05
    dbt_vars: dict = field(default_factory=dict)  # overrides of dbt_project.yml vars
    run_id: str | None = None
    # orders, invoices and payments also from this PostgreSQL URL (credentials: env, never the repo)
    sql_source: str | None = None
    sql_schema: str = "public"
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
        from keyaccounts.warehouse import is_postgres

        self.inbox = Path(self.inbox)
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
        return str(self.dbt_vars.get("business_time_zone") or project_vars()["business_time_zone"])

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
