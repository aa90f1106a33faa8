"""Sign-in time by kind of user, as a ratio against a known user's wrong password.

A sign-in must not tell which names exist: an unknown name, a token-only user (no
password) and a known user with a wrong password should take the same time. Each kind
is timed ``--runs`` times through the real sign-in (``cell.record.users.login``: the
name's lookup, the lockout check, one scrypt, the audit line) on a fresh database, in
interleaved order so that the machine's load falls on all kinds alike. The floor is the
known user with a wrong password, measured in the same run; the figure is each kind's
median over that floor (1.00 is the goal; a leak shows as 0.1 or 2.0).

    python bench/login.py --server-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import uuid
from datetime import timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cell.record.migrate import upgrade
from cell.record.users import AuthError, LoginLimits, Role, create_user, login

# The bench fails on purpose many times: the lockout would stop it, so it is lifted.
NO_LOCKOUT = LoginLimits(per_user=10**9, per_client=10**9)
KINDS = {
    "known user, wrong password (floor)": "known-user",
    "unknown user": "no-such-user",
    "token-only user": "token-only-user",
}


def fresh_database(server_url: str) -> tuple[str, str]:
    name = f"intern_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    db_url = url.set(database=name).render_as_string(hide_password=False)
    upgrade(db_url)
    return db_url, name


def time_kinds(db_url: str, runs: int) -> dict[str, list[float]]:
    engine = create_engine(db_url)
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    with Session(engine) as s:
        create_user(s, "known-user", Role.VIEWER, "the-right-password")
        create_user(s, "token-only-user", Role.VIEWER)
        for _ in range(runs):
            for kind, name in KINDS.items():
                t0 = time.perf_counter()
                with contextlib.suppress(AuthError):
                    login(s, name, "a-wrong-password", timedelta(hours=1), limits=NO_LOCKOUT)
                times[kind].append(time.perf_counter() - t0)
    engine.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", required=True, help="PostgreSQL server (maintenance db)")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    db_url, name = fresh_database(args.server_url)
    try:
        times = time_kinds(db_url, args.runs)
    finally:
        admin = create_engine(args.server_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    floor = statistics.median(next(iter(times.values())))
    print(f"sign-in time, median of {args.runs} runs each; floor {floor * 1000:.1f} ms")
    for kind, ts in times.items():
        med = statistics.median(ts)
        print(f"  {kind:<36} {med * 1000:7.1f} ms   ratio {med / floor:.2f}")


if __name__ == "__main__":
    main()
