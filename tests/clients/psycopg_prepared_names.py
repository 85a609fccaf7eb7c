"""Binds, through libpq's PQexecPrepared (Bind/Execute with no Parse), statements the session
prepared in SQL, and prints what each step returned as JSON."""
import json
import sys

import psycopg

conn = psycopg.connect(sys.argv[1], autocommit=True)
pg = conn.pgconn
out = {}


def result(r):
    if r.status in (psycopg.pq.ExecStatus.TUPLES_OK, psycopg.pq.ExecStatus.COMMAND_OK):
        return {"rows": [[v.decode() if v is not None else None for v in (r.get_value(i, j) for j in range(r.nfields))] for i in range(r.ntuples)]}
    return {"error": r.error_field(psycopg.pq.DiagnosticField.SQLSTATE).decode(),
            "message": r.error_message.decode(errors="replace")}


# An ordinary statement prepared in SQL, run by name through the protocol.
out["plain_prepare"] = result(pg.exec_(b"PREPARE plain(int) AS SELECT name FROM products WHERE id = $1"))
out["plain_bound"] = result(pg.exec_prepared(b"plain", [b"2"]))
# An export someone approved once, as a PREPARE: each run is a new export.
out["export_prepare"] = result(pg.exec_(b"PREPARE export AS SELECT email FROM customers ORDER BY id LIMIT 1"))
out["export_bound"] = result(pg.exec_prepared(b"export", []))
# The same name parsed again as something harmless: the server keeps the SQL definition.
out["export_reparse"] = result(pg.prepare(b"export", b"SELECT 1"))
out["export_bound_again"] = result(pg.exec_prepared(b"export", []))
# A statement parsed through the protocol and approved once, then parsed again under its
# name as something harmless (refused by the server): a later run is still the approved text,
# with new parameters, and is decided again.
out["byid_parse"] = result(pg.prepare(b"byid", b"SELECT email FROM customers WHERE id = $1::int"))
out["byid_reparse"] = result(pg.prepare(b"byid", b"SELECT 1"))
out["byid_bound"] = result(pg.exec_prepared(b"byid", [b"3"]))
# A name nobody prepared.
out["nobody"] = result(pg.exec_prepared(b"nobody", []))
print(json.dumps(out))
