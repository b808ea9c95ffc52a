"""docker-compose.yml, the Dockerfile and docker/ are consistent with the project (issue 7).

No Docker engine runs here, so these tests read the files: the services the spec asks for,
secrets only from `.env` (every variable listed in `.env.example`, no literal password),
healthchecks and dependencies, Airflow settings and commands that Airflow 3 accepts, the
environment names the project really reads, ports, paths and the image's build steps.
`docker compose config` runs too when a compose plugin is installed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
AIRFLOW_INIT = ROOT / "docker" / "airflow" / "init.sh"
PG_INIT = ROOT / "docker" / "postgres" / "init-databases.sh"
SUPERSET_DIR = ROOT / "docker" / "superset"

AIRFLOW_SERVICES = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
REQUIRED_SERVICES = ("postgres", "airflow-init", *AIRFLOW_SERVICES, "superset-init", "superset")
SECRET_KEY_RE = re.compile(r"PASSWORD|SECRET|SALT|TOKEN|FERNET")
REQUIRED_VAR_RE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")
VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def read_env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=VALUE"
            out[name.strip()] = value.strip()
    return out


def interpolate(value, variables: dict[str, str]):
    """What `docker compose` does to the file with an .env: ${VAR}, ${VAR:-default},
    ${VAR-default}, ${VAR:?error}, ${VAR?error}; `$$` is a literal `$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        present = name in variables and (variables[name] != "" or ":" not in op)
        if op.endswith("?") and not present:
            raise AssertionError(f"${{{name}}} is required ({arg}) and .env.example does not set it")
        if op.endswith("-") and not present:
            return arg
        return variables.get(name, "")

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    """The file as written (`${...}` not resolved): for the secret rules."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw_compose) -> dict:
    """The file as `docker compose` sees it with .env = .env.example."""
    return interpolate(raw_compose, read_env_example())


@pytest.fixture(scope="module")
def raw_services(raw_compose) -> dict:
    return raw_compose["services"]


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_example()


@pytest.fixture(scope="module")
def dockerfile() -> dict:
    """ENV values, COPY sources/destinations, RUN lines, the final WORKDIR of the build stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    env, copies, runs, workdirs = {}, [], [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "ENV":
            for tok in shlex.split(rest):
                name, _, value = tok.partition("=")
                env[name] = value
        elif instr == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            copies.append((parts[:-1], parts[-1], workdirs[-1] if workdirs else "/"))
        elif instr == "RUN":
            runs.append(rest)
        elif instr == "WORKDIR":
            workdirs.append(rest)
    return {"env": env, "copies": copies, "runs": runs, "workdirs": workdirs}


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_of(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def is_one_shot(service: dict) -> bool:
    return str(service.get("restart", "")) == "no"


def project_env_names() -> set[str]:
    """Every KEYACCOUNTS_* variable the project reads: a string literal that is exactly such
    a name in its Python code (os.environ.get("..."), a settings table), env_var('...') in
    the dbt project. Comments and prose do not count."""
    import io
    import tokenize

    names: set[str] = set()
    jinja = re.compile(r"""env_var\(\s*["'](KEYACCOUNTS_[A-Z0-9_]+)["']""")
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "dags").glob("*.py")]:
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        for tok in tokens:
            if tok.type == tokenize.STRING and re.fullmatch(r"""[rbu]?(["'])KEYACCOUNTS_[A-Z0-9_]+\1""", tok.string):
                names.add(tok.string.strip("rbu\"'"))
    for path in (ROOT / "dbt_project").rglob("*"):
        if path.suffix in (".sql", ".yml") and "target" not in path.parts:
            names |= set(jinja.findall(path.read_text(encoding="utf-8")))
    return names


def package_dir(name: str) -> Path:
    """An installed package's folder, without importing it (importing Airflow takes seconds)."""
    import importlib.util

    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


@pytest.fixture(scope="module")
def airflow_config_template() -> dict:
    return yaml.safe_load((package_dir("airflow") / "config_templates" / "config.yml").read_text(encoding="utf-8"))


def lines_starting(path: Path, word: str) -> list[list[str]]:
    """Shell lines of a script that run `word ...` (continuations joined)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    return [shlex.split(line.strip()) for line in text.splitlines() if line.strip().startswith(word + " ")]


# ---------------------------------------------------------------- services, dependencies


def test_required_services_exist(services):
    missing = [s for s in REQUIRED_SERVICES if s not in services]
    assert not missing, f"docker-compose.yml lacks services {missing}"


def test_long_running_services_have_healthchecks(services):
    for name, svc in services.items():
        if is_one_shot(svc):
            continue
        if "cli" in (svc.get("profiles") or []):
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} runs for good but has no healthcheck"
        assert svc.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name}: restart policy"


def test_depends_on_targets_and_conditions(services):
    completed_targets = set()
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for target, spec in deps.items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name
            condition = (spec or {}).get("condition", "service_started")
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target} to be healthy: no healthcheck"
            elif condition == "service_completed_successfully":
                assert is_one_shot(services[target]), f"{name} waits for {target} to finish, but it restarts"
                completed_targets.add(target)
            else:
                pytest.fail(f"{name} -> {target}: use service_healthy or service_completed_successfully")
    # every Airflow component waits for the database and the init service
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["superset"]["depends_on"]["superset-init"]["condition"] == "service_completed_successfully"
    # the BI tool is registered after grant-bi created its role
    assert services["superset-init"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    one_shots = {n for n, s in services.items() if is_one_shot(s) and "cli" not in (s.get("profiles") or [])}
    assert one_shots == completed_targets, "each init service is waited for by the services it prepares"


def test_named_volumes_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/", "$")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    assert "postgres-data" in declared
    assert any(v.startswith("postgres-data:/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


# ---------------------------------------------------------------- secrets and .env


def test_every_variable_is_in_env_example(env_example, raw_compose):
    used = set(VAR_RE.findall(json.dumps(raw_compose)))
    missing = sorted(used - set(env_example))
    assert not missing, f".env.example lacks {missing}"
    unused = sorted(set(env_example) - used)
    assert not unused, f".env.example lists variables docker-compose.yml never reads: {unused}"


def test_no_secret_is_written_in_compose(raw_services, raw_compose):
    for name, svc in raw_services.items():
        for key, value in env_of(svc).items():
            if SECRET_KEY_RE.search(key) and not key.endswith("_FILE"):  # a file's path is no secret
                assert REQUIRED_VAR_RE.match(value), (
                    f"{name}: {key} must come from .env as ${{VAR:?...}} (required), got {value!r}")
            for password in re.findall(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]*)@", value):
                assert REQUIRED_VAR_RE.match(password), f"{name}: {key} has a literal password in a URL"
    text = json.dumps(raw_compose)
    # a secret variable never has a default that would silently replace a missing .env value
    for var, default in re.findall(r"\$\{([A-Z0-9_]+):-([^}]*)\}", text):
        assert not SECRET_KEY_RE.search(var), f"${{{var}}} has a default ({default!r}): secrets are required"


def test_env_example_holds_only_placeholders(env_example):
    for name, value in env_example.items():
        if SECRET_KEY_RE.search(name):
            assert value.startswith("change-me"), f".env.example: {name} must be a placeholder, not a real value"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in env_example:  # each variable is explained by a comment in its section
        assert re.search(r"#[^\n]*\n(?:#[^\n]*\n|[A-Z0-9_]+=[^\n]*\n)*" + re.escape(name) + "=", text), name


def test_secrets_reach_only_the_services_that_need_them(raw_services):
    def holders(var):
        return {n for n, s in raw_services.items() if any(var in v for v in env_of(s).values())}

    assert holders("AIRFLOW_ADMIN_PASSWORD") == {"airflow-init"}
    assert holders("KEYACCOUNTS_BI_PASSWORD") == {"airflow-init", "superset-init"}
    assert holders("SUPERSET_ADMIN_PASSWORD") == {"superset-init"}
    # Superset never sees the pipeline's owner password: it reads through the BI role
    assert not holders("KEYACCOUNTS_PG_PASSWORD") & {"superset", "superset-init"}
    assert holders("POSTGRES_PASSWORD") == {"postgres"}


# ---------------------------------------------------------------- Airflow


@pytest.fixture(scope="module")
def airflow_env(services) -> dict[str, str]:
    envs = [env_of(services[n]) for n in AIRFLOW_SERVICES]
    for other in envs[1:]:
        assert other == envs[0], "every Airflow component needs the same configuration"
    return envs[0]


def test_airflow_settings(airflow_env, raw_services):
    assert airflow_env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert airflow_env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert airflow_env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"
    raw = env_of(raw_services["airflow-scheduler"])
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        assert REQUIRED_VAR_RE.match(raw[key]), key
    conn = urlsplit(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert conn.scheme.startswith("postgresql") and conn.hostname == "postgres" and conn.port == 5432
    # the Execution API is the api-server's
    url = urlsplit(airflow_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (url.hostname, url.port, url.path) == ("airflow-api-server", 8080, "/execution/")


def test_airflow_options_exist_in_airflow_3(airflow_env, airflow_config_template):
    """Every AIRFLOW__SECTION__KEY is an option of the installed Airflow (or of Cosmos)."""
    options = {(section, key) for section, body in airflow_config_template.items()
               for key in (body.get("options") or {})}
    cosmos_settings = (package_dir("cosmos") / "settings.py").read_text(encoding="utf-8")
    for name in airflow_env:
        if not name.startswith("AIRFLOW__"):
            continue
        section, _, key = name[len("AIRFLOW__"):].lower().partition("__")
        if section == "cosmos":
            assert f'"{key}"' in cosmos_settings, f"{name}: Cosmos has no setting {key}"
        else:
            assert (section, key) in options, f"{name}: the installed Airflow has no option [{section}] {key}"


def test_auth_manager_is_shipped(airflow_env):
    module, _, cls = airflow_env["AIRFLOW__CORE__AUTH_MANAGER"].rpartition(".")
    top, _, rest = module.partition(".")
    source = package_dir(top).joinpath(*rest.split(".")).with_suffix(".py")
    assert source.exists() and f"class {cls}(" in source.read_text(encoding="utf-8"), f"{module}.{cls} not installed"
    users = airflow_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert users.endswith(":admin")


def test_init_writes_the_admin_password_file_airflow_reads(tmp_path):
    """The Python step of init.sh writes the JSON {user: password} SimpleAuthManager loads."""
    script = re.search(r"python - <<'PY'\n(.*?)\nPY\n", AIRFLOW_INIT.read_text(), re.S).group(1)
    target = tmp_path / "auth" / "passwords.json"
    target.parent.mkdir()
    env = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target), "AIRFLOW_ADMIN_USER": "boss",
           "AIRFLOW_ADMIN_PASSWORD": 'p"w\\d:1'}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)
    assert json.loads(target.read_text()) == {"boss": 'p"w\\d:1'}
    assert target.stat().st_mode & 0o077 == 0, "the passwords file is readable by its owner only"


def test_auth_volume_shared_by_init_and_api_server(services, airflow_env):
    folder = str(Path(airflow_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent)
    for name in ("airflow-init", "airflow-api-server"):
        assert any(v.endswith(":" + folder) for v in services[name]["volumes"]), f"{name} must mount {folder}"


def test_airflow_commands_are_valid_airflow_3_cli(services, tmp_path):
    commands = []
    for name in AIRFLOW_SERVICES:
        cmd = command_of(services[name])
        assert cmd[0] == "airflow", f"{name} runs {cmd}"
        commands.append(cmd[1:])
        test = services[name]["healthcheck"]["test"]
        if test[0] == "CMD-SHELL" and "airflow " in test[1]:
            commands.append(shlex.split(test[1].replace("$$", "$"))[1:])
    assert [c[0] for c in commands if c[0] != "jobs"] == ["api-server", "scheduler", "dag-processor", "triggerer"]
    init = lines_starting(AIRFLOW_INIT, "airflow")
    assert ["db", "migrate"] in [c[1:3] for c in init]
    commands += [c[1:] for c in init]
    code = (
        "import json, sys\n"
        "from airflow.cli import cli_parser\n"
        "parser = cli_parser.get_parser()\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    parser.parse_args(argv)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__UNIT_TEST_MODE": "False", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(commands)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"Airflow rejects one of {commands}: {proc.stderr[-2000:]}"


def test_pool_is_the_one_the_dags_use():
    source = (ROOT / "src" / "keyaccounts" / "orchestration.py").read_text()
    pool = re.search(r"""KEYACCOUNTS_DUCKDB_POOL["'],\s*["']([^"']+)["']""", source).group(1)
    pools = [c for c in lines_starting(AIRFLOW_INIT, "airflow") if c[1:3] == ["pools", "set"]]
    assert pools and pools[0][3] == pool and int(pools[0][4]) >= 1


def test_scheduler_health_check_port(services, airflow_env, airflow_config_template):
    port = airflow_config_template["scheduler"]["options"]["scheduler_health_check_server_port"]["default"]
    assert airflow_env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert f"localhost:{port}/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])


# ---------------------------------------------------------------- keyaccounts settings


def test_keyaccounts_env_names_are_read_by_the_project(services):
    known = project_env_names()
    assert {"KEYACCOUNTS_WAREHOUSE", "KEYACCOUNTS_PG_PASSWORD", "KEYACCOUNTS_INBOX"} <= known  # the scan works
    used = set()
    for svc in services.values():
        used |= {k for k in env_of(svc) if k.startswith("KEYACCOUNTS_")}
        used |= {v for v in VAR_RE.findall(json.dumps(svc)) if v.startswith("KEYACCOUNTS_")}
    for script in (AIRFLOW_INIT, SUPERSET_DIR / "bootstrap.sh", PG_INIT):
        used |= set(re.findall(r"KEYACCOUNTS_[A-Z0-9_]+", script.read_text()))
    unknown = sorted(used - known)
    assert not unknown, f"the project reads no {unknown} (src/, dags/, dbt_project/)"


def test_keyaccounts_settings_of_the_dags(airflow_env, services, raw_services):
    env = airflow_env
    raw = env_of(raw_services["airflow-scheduler"])
    assert env["KEYACCOUNTS_ENV"] == "production" and REQUIRED_VAR_RE.match(raw["KEYACCOUNTS_PII_SALT"])
    assert raw["KEYACCOUNTS_BUSINESS_TZ"].startswith("${KEYACCOUNTS_BUSINESS_TZ:-")
    from zoneinfo import ZoneInfo

    ZoneInfo(env["KEYACCOUNTS_BUSINESS_TZ"])
    # the warehouse: a PostgreSQL URL without password, the same server, user and database as
    # the parts dbt's profile reads, on the postgres service
    url = urlsplit(env["KEYACCOUNTS_WAREHOUSE"])
    assert url.scheme == "postgresql" and url.password is None
    assert (url.username, url.hostname, str(url.port), url.path.lstrip("/")) == (
        env["KEYACCOUNTS_PG_USER"], env["KEYACCOUNTS_PG_HOST"], env["KEYACCOUNTS_PG_PORT"],
        env["KEYACCOUNTS_PG_DATABASE"])
    assert url.hostname in services
    profiles = yaml.safe_load((ROOT / "dbt_project" / "profiles.yml").read_text())
    assert env["KEYACCOUNTS_DBT_TARGET"] in profiles["keyaccounts"]["outputs"]
    assert profiles["keyaccounts"]["outputs"][env["KEYACCOUNTS_DBT_TARGET"]]["type"] == "postgres"
    # inbox and exports are volumes mounted exactly where the settings point
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        targets = {v.split(":")[1] for v in services[name]["volumes"]}
        assert {env["KEYACCOUNTS_INBOX"], env["KEYACCOUNTS_EXPORTS"]} <= targets, name


def test_postgres_init_creates_what_the_services_use(airflow_env):
    sql = PG_INIT.read_text()
    env = airflow_env
    airflow_conn = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    superset_config = (SUPERSET_DIR / "superset_config.py").read_text()
    superset_user, superset_db = re.search(r"postgresql\+psycopg2://(\w+):\{\}@\{\}:\{\}/(\w+)", superset_config).groups()
    for role, database in ((airflow_conn.username, airflow_conn.path.lstrip("/")),
                           (env["KEYACCOUNTS_PG_USER"], env["KEYACCOUNTS_PG_DATABASE"]),
                           (superset_user, superset_db)):
        assert re.search(rf"CREATE ROLE {role} LOGIN", sql), role
        assert re.search(rf"CREATE DATABASE {database} OWNER {role};", sql), database
    # grant-bi runs as the warehouse owner and creates the BI role: it needs CREATEROLE
    assert re.search(rf"CREATE ROLE {env['KEYACCOUNTS_PG_USER']} LOGIN CREATEROLE", sql)
    # passwords are psql variables bound from the environment, never in the SQL text
    assert "PASSWORD '" not in sql.upper().replace("PASSWORD :'", "")


def test_grant_bi_runs_in_init_with_the_projects_cli(services, raw_services, airflow_env):
    from keyaccounts.cli import _parser

    calls = lines_starting(AIRFLOW_INIT, "keyaccounts")
    grant = [c for c in calls if c[1] == "grant-bi"]
    assert grant, "airflow-init must run `keyaccounts grant-bi`"
    for call in calls:
        args = _parser().parse_args(call[1:])  # exits 2 on an unknown command or option
        assert args.command == call[1]
    assert "--warehouse" in grant[0] and "${KEYACCOUNTS_WAREHOUSE}" in grant[0]
    roles = {env_of(services[n])["KEYACCOUNTS_BI_ROLE"] for n in ("airflow-init", "superset-init")}
    assert len(roles) == 1, "Superset must connect as the role grant-bi created"
    init_env = env_of(services["airflow-init"])
    assert init_env["KEYACCOUNTS_WAREHOUSE"] == airflow_env["KEYACCOUNTS_WAREHOUSE"]
    assert REQUIRED_VAR_RE.match(env_of(raw_services["airflow-init"])["KEYACCOUNTS_BI_PASSWORD"])


def test_superset_reads_marts_as_the_bi_role(services):
    bootstrap = (SUPERSET_DIR / "bootstrap.sh").read_text()
    assert "superset set-database-uri" in bootstrap and "KEYACCOUNTS_BI_ROLE" in bootstrap
    assert "KEYACCOUNTS_PG_PASSWORD" not in bootstrap and "KEYACCOUNTS_PG_USER" not in bootstrap
    env = env_of(services["superset-init"])
    assert (env["KEYACCOUNTS_PG_HOST"], env["KEYACCOUNTS_PG_DATABASE"]) == ("postgres", "warehouse")
    cmd = command_of(services["superset-init"])
    superset_dockerfile = (SUPERSET_DIR / "Dockerfile").read_text()
    assert cmd[-1] == "/app/keyaccounts/bootstrap.sh" and "COPY bootstrap.sh /app/keyaccounts/bootstrap.sh" in \
        superset_dockerfile
    assert "psycopg2" in superset_dockerfile
    assert services["superset"]["image"] == services["superset-init"]["image"]


def test_superset_uris_quote_any_password(services):
    """The URIs Superset gets (its metadata, the marts) survive passwords with URL characters."""
    password = "a@b/c:d%e"  # pragma: allowlist secret
    bootstrap = (SUPERSET_DIR / "bootstrap.sh").read_text()
    script = re.search(r"python - <<'PY'\n(.*?)\nPY\n", bootstrap, re.S).group(1)
    env = {**env_of(services["superset-init"]), "KEYACCOUNTS_BI_PASSWORD": password}
    uri = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True, timeout=30).stdout.strip()
    parts = urlsplit(uri)
    from urllib.parse import unquote

    assert parts.scheme == "postgresql+psycopg2" and unquote(parts.password) == password
    assert (parts.username, parts.hostname, parts.port, parts.path) == (
        env["KEYACCOUNTS_BI_ROLE"], "postgres", 5432, "/warehouse")
    config: dict = {}
    env = {**env_of(services["superset"]), "SUPERSET_DB_PASSWORD": password, "SUPERSET_SECRET_KEY": "k"}
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, env):
        exec((SUPERSET_DIR / "superset_config.py").read_text(), config)
    meta = urlsplit(config["SQLALCHEMY_DATABASE_URI"])
    assert unquote(meta.password) == password and (meta.hostname, meta.port) == ("postgres", 5432)


# ---------------------------------------------------------------- ports


def test_ports(services, airflow_env):
    def container_ports(name):
        return {str(p).rsplit(":", 1)[-1] for p in services[name].get("ports") or []}

    assert container_ports("airflow-api-server") == {"8080"}
    assert command_of(services["airflow-api-server"])[-2:] == ["--port", "8080"]
    assert "localhost:8080/" in " ".join(services["airflow-api-server"]["healthcheck"]["test"])
    assert container_ports("superset") == {"8088"}
    assert env_of(services["superset"])["SUPERSET_PORT"] == "8088"
    assert "localhost:8088/health" in " ".join(services["superset"]["healthcheck"]["test"])
    assert container_ports("postgres") == {"5432"}
    assert str(services["postgres"]["ports"][0]).startswith("127.0.0.1:"), "PostgreSQL stays on localhost"
    for name, svc in services.items():
        for key, value in env_of(svc).items():
            if key.endswith("_PORT") and key not in ("SUPERSET_PORT",):
                assert value == "5432", f"{name}: {key}"


# ---------------------------------------------------------------- image and paths


def test_dockerfile_builds_from_the_lock(dockerfile):
    runs = " ".join(dockerfile["runs"])
    assert "uv sync --frozen" in runs and "--no-editable" not in runs  # PROJECT_ROOT = /opt/keyaccounts
    assert "python -m keyaccounts.transform.manifest" in runs
    for sources, _dest, _workdir in dockerfile["copies"]:
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which the repo does not have"
    copied = {src.rstrip("/") for sources, _, _ in dockerfile["copies"] for src in sources}
    assert {"pyproject.toml", "uv.lock", "src", "dags", "dbt_project", "expectations", "docker/airflow"} <= copied
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for pattern in (".env", ".venv", ".state", ".git"):
        assert pattern in ignored, f".dockerignore must exclude {pattern}"
    for src in copied:
        assert not any(src == p or src.startswith(p.rstrip("/") + "/") for p in ignored), f"{src} is ignored"


@pytest.mark.parametrize("path", [DOCKERFILE, SUPERSET_DIR / "Dockerfile"], ids=["airflow", "superset"])
def test_dockerfile_variables_are_declared(path):
    """Each ${X} after FROM is an ARG declared after that FROM or an ENV (build args before
    FROM are not visible inside the stage)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    declared: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            declared = {"PATH", "HOME"}
            continue
        used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", rest)) if instr in ("RUN", "ENV", "USER", "COPY",
                                                                                "WORKDIR") else set()
        if instr == "RUN":  # shell variables assigned or sourced inside the command are the shell's
            used = {u for u in used if u.isupper()}
        assert used <= declared, f"{path.name}: {instr} uses undeclared {sorted(used - declared)}"
        if instr == "ARG":
            declared.add(rest.split("=")[0].strip())
        elif instr == "ENV":
            declared |= {tok.partition("=")[0] for tok in shlex.split(rest)}


def image_path(dockerfile, repo_dir: str) -> str:
    for sources, dest, workdir in dockerfile["copies"]:
        if any(s.rstrip("/") == repo_dir for s in sources):
            return str(Path(workdir) / dest).rstrip("/")
    raise AssertionError(f"the Dockerfile does not copy {repo_dir}")


def test_dags_folder_and_manifest_paths(dockerfile, airflow_env, services):
    from keyaccounts.config import STATE_DIR
    from keyaccounts.transform.manifest import MANIFEST_PATH

    assert airflow_env["AIRFLOW__CORE__DAGS_FOLDER"] == image_path(dockerfile, "dags")
    assert sorted(p.name for p in (ROOT / "dags").glob("*.py")), "dags/ holds the DAG files"
    project_root = str(Path(image_path(dockerfile, "src")).parent)
    assert image_path(dockerfile, "dbt_project") == f"{project_root}/dbt_project"
    assert image_path(dockerfile, "expectations") == f"{project_root}/expectations"  # found beside src/
    # the manifest is written where the image's state dir puts it, and the DAGs read it there
    state_dir = dockerfile["env"]["KEYACCOUNTS_STATE_DIR"]
    expected = str(Path(state_dir) / MANIFEST_PATH.relative_to(STATE_DIR))
    assert dockerfile["env"]["KEYACCOUNTS_DBT_MANIFEST"] == expected
    assert airflow_env["KEYACCOUNTS_DBT_MANIFEST"] == expected
    assert dockerfile["env"]["KEYACCOUNTS_DBT_PROJECT_DIR"] == f"{project_root}/dbt_project"
    # the init script is run from where the image put it
    init_cmd = command_of(services["airflow-init"])
    assert init_cmd[-1] == f"{image_path(dockerfile, 'docker/airflow')}/init.sh"
    assert AIRFLOW_INIT.exists()


def test_bind_mounts_exist(services):
    for name, svc in services.items():
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0]
            if source.startswith("./docker/"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which the repo does not have"
    assert any(v.startswith("./docker/postgres/init-databases.sh:/docker-entrypoint-initdb.d/")
               for v in services["postgres"]["volumes"])


def test_scripts_are_strict_shell():
    for script in (AIRFLOW_INIT, PG_INIT, SUPERSET_DIR / "bootstrap.sh"):
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text, script
        if shutil.which("bash"):
            proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr


def test_docker_compose_config_when_available():
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no `docker compose` here")
    proc = subprocess.run([docker, "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "-q"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
