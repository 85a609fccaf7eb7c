"""Exercise asyncpg against a URL and print what it saw as JSON (compared direct vs gateway)."""
import asyncio
import datetime
import io
import json
import sys

import asyncpg


async def main(url):
    out = {}
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE things (id int PRIMARY KEY, label text, amount numeric, at timestamptz, data jsonb)")
        await conn.executemany(
            "INSERT INTO things VALUES ($1, $2, $3::numeric, $4, $5::jsonb)",
            [
                (i, f"thing {i}", str(i * 2.25), datetime.datetime(2024, 1, i % 28 + 1, 10, tzinfo=datetime.timezone.utc), json.dumps({"i": i}))
                for i in range(1, 31)
            ],
        )
        rows = await conn.fetch("SELECT id, label, amount, at, data FROM things WHERE id <= $1 ORDER BY id", 5)
        out["fetch"] = [[r["id"], r["label"], str(r["amount"]), r["at"].isoformat(), r["data"]] for r in rows]
        stmt = await conn.prepare("SELECT label FROM things WHERE id = $1")
        out["prepared"] = [await stmt.fetchval(i) for i in range(1, 6)]
        async with conn.transaction():
            await conn.execute("UPDATE things SET label = 'changed' WHERE id = 1")
        try:
            async with conn.transaction():
                await conn.execute("UPDATE things SET label = 'rolled back' WHERE id = 2")
                await conn.execute("SELECT 1/0")
        except asyncpg.exceptions.DivisionByZeroError as e:
            out["error"] = e.sqlstate
        out["labels"] = [r[0] for r in await conn.fetch("SELECT label FROM things WHERE id IN (1, 2) ORDER BY id")]
        buf = io.BytesIO()
        await conn.copy_from_query("SELECT id, label FROM things WHERE id < 4 ORDER BY id", output=buf)
        out["copy_out"] = buf.getvalue().decode()
        out["count"] = await conn.fetchval("SELECT count(*) FROM things")
    finally:
        await conn.close()
    print(json.dumps(out, sort_keys=True))


asyncio.run(main(sys.argv[1]))
