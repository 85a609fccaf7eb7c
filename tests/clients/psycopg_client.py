"""Exercise psycopg 3 against a URL and print what it saw as JSON (compared direct vs gateway)."""
import json
import sys

import psycopg

url = sys.argv[1]
out = {}
with psycopg.connect(url, autocommit=False) as conn:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE people (id int PRIMARY KEY, name text, score numeric, born date, tags text[])")
        cur.executemany(
            "INSERT INTO people VALUES (%s, %s, %s, %s, %s)",
            [(i, f"person {i}", i * 1.5, f"2000-01-{i % 28 + 1:02d}", [f"t{i}", "x"]) for i in range(1, 21)],
        )
        conn.commit()
        cur.execute("SELECT id, name, score::text, born::text, tags FROM people WHERE id < %s ORDER BY id", (5,))
        out["params"] = cur.fetchall()
        # Server-side prepared statements.
        rows = []
        for i in range(1, 8):
            cur.execute("SELECT name FROM people WHERE id = %s", (i,), prepare=True)
            rows.append(cur.fetchone()[0])
        out["prepared"] = rows
        # COPY both ways.
        with cur.copy("COPY people (id, name) FROM STDIN") as copy:
            for i in range(100, 150):
                copy.write_row((i, f"copied {i}"))
        conn.commit()
        lines = []
        with cur.copy("COPY (SELECT id, name FROM people WHERE id >= 100 ORDER BY id) TO STDOUT") as copy:
            for row in copy.rows():
                lines.append(list(row))
        out["copy_out"] = lines
        # Errors keep the session usable after rollback.
        try:
            cur.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero as e:
            out["error"] = e.sqlstate
        conn.rollback()
        cur.execute("SELECT count(*) FROM people")
        out["count"] = cur.fetchone()[0]
print(json.dumps(out, default=str, sort_keys=True))
