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
        # A server-side (named) cursor: a DECLARE, then FETCHes of it in chunks, in one
        # transaction.
        with conn.cursor(name="people_chunks") as named:
            named.itersize = 7
            named.execute("SELECT id FROM people WHERE id < 30 ORDER BY id")
            out["named_cursor"] = [r[0] for r in named]
        conn.commit()
        # Errors keep the session usable after rollback.
        try:
            cur.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero as e:
            out["error"] = e.sqlstate
        conn.rollback()
        cur.execute("SELECT count(*) FROM people")
        out["count"] = cur.fetchone()[0]

# COPY over the extended protocol, driven by libpq itself (PQsendQueryParams: Parse, Bind,
# Describe, Execute, Sync; then the COPY data), on a connection of its own.
pg = psycopg.pq.PGconn.connect(url.encode())
assert pg.status == psycopg.pq.ConnStatus.OK, pg.error_message
pg.send_query_params(b"COPY people (id, name) FROM STDIN", None)
res = pg.get_result()
copy_in = [psycopg.pq.ExecStatus(res.status).name]
for i in range(200, 210):
    assert pg.put_copy_data(f"{i}\tlibpq {i}\n".encode()) == 1
assert pg.put_copy_end() == 1
while (res := pg.get_result()) is not None:
    copy_in.append([psycopg.pq.ExecStatus(res.status).name, res.command_status.decode()])
out["extended_copy_in"] = copy_in
pg.send_query_params(b"COPY (SELECT id, name FROM people WHERE id >= 200 ORDER BY id) TO STDOUT", None)
res = pg.get_result()
copied = [psycopg.pq.ExecStatus(res.status).name]
while True:
    n, data = pg.get_copy_data(0)
    if n < 0:
        break
    copied.append(bytes(data).decode())
while (res := pg.get_result()) is not None:
    copied.append([psycopg.pq.ExecStatus(res.status).name, res.command_status.decode()])
out["extended_copy_out"] = copied
# A COPY the server refuses mid-stream (a duplicate key) fails like any statement, and the
# connection goes on.
pg.send_query_params(b"COPY people (id, name) FROM STDIN", None)
pg.get_result()
pg.put_copy_data(b"200\tagain\n")
pg.put_copy_end()
failed = []
while (res := pg.get_result()) is not None:
    failed.append([psycopg.pq.ExecStatus(res.status).name, res.error_field(psycopg.pq.DiagnosticField.SQLSTATE).decode()])
res = pg.exec_params(b"SELECT count(*) FROM people WHERE id >= 200", None)
failed.append(res.get_value(0, 0).decode())
out["extended_copy_error"] = failed
pg.finish()
print(json.dumps(out, default=str, sort_keys=True))
