"""A small SQL prompt for ``intern db shell`` where no ``psql`` is installed.

Statements end with ``;`` and may span lines; ``\\dt`` lists the tables, ``\\q`` (or
end of input) leaves. Each statement runs in its own transaction (autocommit); an error
is printed and the prompt goes on. Ctrl-C drops the statement being typed, or cancels
the one running.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console

from cell.cli.output import print_table

if TYPE_CHECKING:
    from psycopg import Connection

LIST_TABLES = """SELECT table_name AS "table", table_type AS "type"
    FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"""


def sql_prompt(uri: str, password: str | None, stdin: TextIO | None = None) -> int:
    """Read statements from ``stdin`` (default: the terminal) and run them on ``uri``
    until ``\\q`` or the end of input; 0, or 1 when the last statement failed."""
    import psycopg

    stdin = stdin or sys.stdin
    console = Console()
    interactive = stdin.isatty()
    failed = False
    with psycopg.connect(uri, password=password, autocommit=True) as conn:
        if interactive:
            console.print("SQL prompt (no psql found): end statements with ';', \\q to leave")
        buffer: list[str] = []
        while True:
            try:
                if interactive:
                    console.print("intern=> " if not buffer else "intern-> ", end="")
                line = stdin.readline()
            except KeyboardInterrupt:
                buffer.clear()
                console.print()
                continue
            if not line or line.strip() == "\\q":
                return 1 if failed else 0
            text = "\n".join([*buffer, line.rstrip("\n")]).strip()
            if text == "\\dt":
                text = LIST_TABLES + ";"
            if not text.endswith(";"):
                if text:
                    buffer.append(line.rstrip("\n"))
                continue
            buffer.clear()
            failed = not _run(conn, text, console)


def _run(conn: Connection[Any], sql: str, console: Console) -> bool:
    """Run one statement and print its rows or its status; False when it failed."""
    import psycopg

    try:
        with conn.cursor() as cur:
            cur.execute(sql.encode())
            if cur.description is None:
                console.print(cur.statusmessage or "done", highlight=False)
                return True
            names = [d.name for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except psycopg.Error as exc:
        console.print(f"[bold red]error:[/] {str(exc).strip()}", highlight=False)
        return False
    except KeyboardInterrupt:
        conn.cancel()
        console.print("cancelled")
        return False
    if rows:
        print_table(rows, console, title="", names_as_given=True)
    console.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", highlight=False)
    return True
