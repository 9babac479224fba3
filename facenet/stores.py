"""Checks of a team's shared stores (`facenet doctor --tracking-uri URL --storage URL`): an MLflow tracking URI
(a server, or a database MLflow writes itself) and an Optuna RDB storage. For each: reachable, the right schema,
writable; every failure in one line that says what to do. Nothing is left behind: the probe run is deleted, the
probe table is created in a transaction that is rolled back."""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from facenet.doctor import Check
from facenet.errors import first_line
from facenet.tracking import sqlite_file

TIMEOUT = 5.0  # seconds, per connection
PROBE_EXPERIMENT = "facenet-doctor"
MLFLOW_TABLES = {"experiments", "runs", "metrics", "params"}
OPTUNA_TABLES = {"studies", "trials", "version_info"}


def _first_line(err: BaseException) -> str:
    return first_line(getattr(err, "orig", None) or err, 240)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _engine(url: str):
    import sqlalchemy

    args = {"connect_timeout": int(TIMEOUT)} if url.startswith("postgresql") else {}
    return sqlalchemy.create_engine(url, connect_args=args, poolclass=sqlalchemy.pool.NullPool)


def _tables(engine) -> set[str]:
    import sqlalchemy

    return set(sqlalchemy.inspect(engine).get_table_names())


def _alembic_revision(engine) -> str | None:
    import sqlalchemy

    with engine.connect() as connection:
        row = connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else None


def _writable(engine) -> Check:
    """Create a table and a row in a transaction and roll it back (PostgreSQL undoes the DDL too; SQLite's driver
    commits DDL at once, so a table still there afterwards is dropped)."""
    import sqlalchemy

    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(sqlalchemy.text("CREATE TABLE facenet_doctor_probe (x INTEGER)"))
            connection.execute(sqlalchemy.text("INSERT INTO facenet_doctor_probe VALUES (1)"))
            transaction.rollback()
        if "facenet_doctor_probe" in _tables(engine):
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text("DROP TABLE facenet_doctor_probe"))
    except Exception as err:  # noqa: BLE001 - any refusal is the answer
        return Check("writable", False, f"cannot create a table: {_first_line(err)} (grant CREATE on the database)")
    return Check("writable", True, "created a probe table and row, then removed them")


def _reachable(url: str, what: str) -> tuple[Check, object | None]:
    try:
        engine = _engine(url)
        with engine.connect():
            pass
    except ModuleNotFoundError as err:
        return Check("reachable", False, f"no driver for {url.split(':')[0]}: {err.name} is not installed"), None
    except Exception as err:  # noqa: BLE001 - the driver's own reason, in one line
        return Check("reachable", False, f"{what} at {_redact(url)} does not answer: {_first_line(err)}"), None
    return Check("reachable", True, _redact(url)), engine


def _redact(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a database URL: shown as given
        return url


def check_tracking(uri: str) -> list[Check]:
    """An MLflow tracking URI: an http(s) server, or a database (sqlite / postgresql / mysql) MLflow writes itself."""
    return [_named(c, "tracking") for c in (_tracking_server(uri) if uri.startswith("http") else _tracking_db(uri))]


def _named(check: Check, prefix: str) -> Check:
    return Check(f"{prefix} {check.name}", check.ok, check.detail)


def _tracking_server(uri: str) -> list[Check]:
    from facenet.tracking import server_unreachable

    base = uri.rstrip("/")
    reason = server_unreachable(base, TIMEOUT)
    if reason is not None:
        return [Check("reachable", False, f"MLflow server {base} does not answer /health: {reason}")]
    out = [Check("reachable", True, f"{base}/health answers")]
    try:
        status, body = _get(base + "/api/2.0/mlflow/experiments/search?max_results=1")
        answer = json.loads(body) if status == 200 else None
    except (OSError, ValueError) as err:
        status, answer = first_line(err), None
    if not isinstance(answer, dict):
        out.append(Check("schema", False, f"{base} is not an MLflow tracking server (experiments/search: {status})"))
        return out
    try:
        version = _get(base + "/version")[1].decode().strip()
    except OSError:
        version = "?"
    out.append(Check("schema", True, f"MLflow tracking API answers (server {version})"))
    out.append(_probe_run(base))
    return out


def _probe_run(uri: str) -> Check:
    """Create a run with a metric and an artifact (the artifact store, through the server), then delete it."""
    from mlflow.tracking import MlflowClient

    from facenet.tracking import experiment_id

    client = MlflowClient(uri)
    run_id = None
    try:
        run_id = client.create_run(experiment_id(client, PROBE_EXPERIMENT), run_name="probe").info.run_id
        client.log_metric(run_id, "probe", 1.0)
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / "probe.txt"
            probe.write_text("facenet doctor\n")
            client.log_artifact(run_id, str(probe))
            listed = [a.path for a in client.list_artifacts(run_id)]
        if "probe.txt" not in listed:
            return Check("writable", False, f"an artifact logged to {uri} is not listed: check the artifact store")
    except Exception as err:  # noqa: BLE001 - the server's or the artifact store's reason
        return Check("writable", False, f"cannot write a run and an artifact: {_first_line(err)}")
    finally:
        if run_id is not None:
            try:
                client.delete_run(run_id)
            except Exception:  # noqa: BLE001 - a probe run left behind is harmless (experiment facenet-doctor)
                pass
    return Check(
        "writable", True, f"a run, a metric and an artifact written and deleted (experiment {PROBE_EXPERIMENT})"
    )


def _tracking_db(uri: str) -> list[Check]:
    if missing := _missing_sqlite(uri, "MLflow"):
        return missing
    reachable, engine = _reachable(uri, "the MLflow database")
    if engine is None:
        return [reachable]
    out = [reachable]
    tables = _tables(engine)
    if tables & OPTUNA_TABLES and not tables & MLFLOW_TABLES:
        out.append(Check("schema", False, "this database holds an Optuna study storage: give MLflow its own database"))
        return out
    if not tables:
        out.append(Check("schema", True, "empty: MLflow creates its tables on first use"))
    else:
        from mlflow.store.db.utils import _get_latest_schema_revision

        head, current = (
            _get_latest_schema_revision(),
            _alembic_revision(engine) if "alembic_version" in tables else None,
        )
        if not MLFLOW_TABLES <= tables:
            out.append(
                Check("schema", False, f"not an MLflow store: it has other tables ({', '.join(sorted(tables)[:5])})")
            )
            return out
        if current != head:
            out.append(
                Check("schema", False, f"MLflow schema {current}, this MLflow needs {head}: mlflow db upgrade URI")
            )
            return out
        out.append(Check("schema", True, f"MLflow schema {head}"))
    out.append(_writable(engine))
    return out


def _missing_sqlite(url: str, owner: str) -> list[Check] | None:
    """For a SQLite file that does not exist yet: fine if its folder is writable (nothing is created to check).
    None for an existing file or another database."""
    path = sqlite_file(url)
    if path is None or path.is_file():
        return None
    ok = path.parent.is_dir() and os.access(path.parent, os.W_OK)
    detail = f"{path} does not exist yet; {owner} creates it" if ok else f"cannot create {path}: no writable folder"
    return [Check("reachable", ok, detail)]


def check_storage(url: str) -> list[Check]:
    """An Optuna RDB storage URL (hydra.sweeper.storage)."""
    if missing := _missing_sqlite(url, "Optuna"):
        return [_named(c, "storage") for c in missing]
    reachable, engine = _reachable(url, "the Optuna storage")
    if engine is None:
        return [_named(reachable, "storage")]
    out = [reachable]
    tables = _tables(engine)
    if tables & MLFLOW_TABLES:
        out.append(
            Check(
                "schema",
                False,
                "this database holds MLflow's tables: give Optuna a database of its own (both keep alembic_version)",
            )
        )
    elif not tables:
        out.append(Check("schema", True, "empty: Optuna creates its tables on first use"))
    elif not OPTUNA_TABLES <= tables:
        out.append(
            Check("schema", False, f"not an Optuna storage: it has other tables ({', '.join(sorted(tables)[:5])})")
        )
    else:
        head, current = _optuna_head(), _alembic_revision(engine) if "alembic_version" in tables else None
        studies = _count(engine, "studies")
        if current != head:
            out.append(
                Check(
                    "schema",
                    False,
                    f"Optuna schema {current}, this Optuna needs {head}: optuna storage upgrade --storage URL",
                )
            )
        else:
            out.append(Check("schema", True, f"Optuna schema {head}, {studies} stud{'y' if studies == 1 else 'ies'}"))
    if out[-1].ok:
        out.append(_writable(engine))
    return [_named(c, "storage") for c in out]


def _optuna_head() -> str:
    import optuna
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(optuna.__file__).parent / "storages" / "_rdb" / "alembic")).get_current_head()


def _count(engine, table: str) -> int:
    import sqlalchemy

    with engine.connect() as connection:
        return int(connection.execute(sqlalchemy.text(f"SELECT COUNT(*) FROM {table}")).scalar())
